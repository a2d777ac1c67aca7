"""p11bridge: the board's PKCS#11 token on the host through p11-kit's remoting.

`p11bridge serve --device PORT` speaks p11-kit's RPC protocol on stdin/stdout
(rpc.py, server.py) and forwards each call to modules/p11bridge/p11bridge.py on the board
over its serial line (link.py, wire.py). `p11bridge install-module` writes the
p11-kit module file that makes p11-kit-proxy.so start it.
"""
