// boards/unix with TLS 1.3 (the options are -D flags in mpconfigvariant.mk: mbedTLS's
// config file is the port's, not ours).
#include "../unix/mpconfigvariant.h"
