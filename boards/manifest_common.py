# The frozen modules every board carries. Paths are relative to this file.
package("pkcs11", base_path="../modules")
module("p11tls.py", base_path="../modules")
module("p11csr.py", base_path="../modules")
module("p11boot.py", base_path="../modules")
# Packages with their own micropython-lib style manifest.py (metadata, require).
add_library("project", "../modules")
require("mqtt", library="project")
