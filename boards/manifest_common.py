# The frozen modules every board carries. Paths are relative to this file.
package("pkcs11", base_path="../modules")
module("mqtt.py", base_path="../modules")
module("p11tls.py", base_path="../modules")
module("p11csr.py", base_path="../modules")
module("p11boot.py", base_path="../modules")
module("p11bridge.py", base_path="../modules")
