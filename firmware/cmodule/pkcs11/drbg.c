// _pkcs11 random numbers: random_bytes and the module's CTR_DRBG.
//
// One mbedTLS CTR_DRBG (AES-256), seeded on first use through
// mbedtls_entropy_func, as extmod/modtls_mbedtls.c seeds its own:
// the sources are whatever the port's mbedTLS configuration registers, i.e.
// the OS (getrandom / /dev/urandom) on unix and the port's
// mbedtls_hardware_poll on bare-metal ports (qemu: host entropy through
// semihosting; esp32: the hardware RNG). With no strong source the seed
// fails and every caller raises OSError: there is no weak fallback.
// mbedTLS reseeds the DRBG from the same sources every 10000 requests; on
// ESP32 ec_generate also reseeds it before making a key (pkcs11_drbg_reseed).
//
// ESP32: the hardware RNG is only truly random while Wi-Fi/BT runs or while
// ESP-IDF's bootloader_random_enable() feeds it the SAR ADC noise. Right after
// boot, with the radio off, it is not; so each seed and reseed runs with
// bootloader_random_enable() on, unless Wi-Fi or Bluetooth is running (their
// RF noise feeds it then, and the SAR ADC must not be taken from them).
//
// The entropy context lives only for one seed or reseed: mbedTLS allocates its
// hash state on the MicroPython heap on bare-metal ports, and a context kept in
// a C static across a soft reset would point into a heap that has been wiped
// (the tracked-allocation list then corrupts whatever object sits there now).
#include "py/runtime.h"
#include "py/mpthread.h"
#include "mbedtls/ctr_drbg.h"
#include "mbedtls/entropy.h"
#include "mbedtls/platform_util.h"
#include "modpkcs11.h"

static mbedtls_ctr_drbg_context pkcs11_drbg;
static bool pkcs11_drbg_seeded;

#if MICROPY_PY_THREAD && !MICROPY_PY_THREAD_GIL
// Without a GIL (the unix port) threads may call in concurrently.
#if !MICROPY_MODULE_BUILTIN_INIT
#error "_pkcs11 needs MICROPY_MODULE_BUILTIN_INIT to set up its DRBG lock"
#endif
static mp_thread_mutex_t pkcs11_drbg_mutex;
static bool pkcs11_drbg_mutex_ready;

void pkcs11_drbg_init(void) {
    if (!pkcs11_drbg_mutex_ready) {
        mp_thread_mutex_init(&pkcs11_drbg_mutex);
        pkcs11_drbg_mutex_ready = true;
    }
}
#define DRBG_LOCK() mp_thread_mutex_lock(&pkcs11_drbg_mutex, 1)
#define DRBG_UNLOCK() mp_thread_mutex_unlock(&pkcs11_drbg_mutex)
#else
void pkcs11_drbg_init(void) {
}
#define DRBG_LOCK()
#define DRBG_UNLOCK()
#endif

#ifdef ESP_PLATFORM
#include "bootloader_random.h"
#include "esp_wifi.h"
#if CONFIG_BT_ENABLED
#include "esp_bt.h"
#endif

// True while Wi-Fi or Bluetooth runs (the RNG is fed by RF noise then).
static bool pkcs11_radio_on(void) {
    wifi_mode_t mode;
    if (esp_wifi_get_mode(&mode) == ESP_OK && mode != WIFI_MODE_NULL) {
        return true;
    }
    #if CONFIG_BT_ENABLED
    if (esp_bt_controller_get_status() == ESP_BT_CONTROLLER_STATUS_ENABLED) {
        return true;
    }
    #endif
    return false;
}
#endif

// The DRBG's entropy callback: a fresh entropy context for each call.
static int pkcs11_entropy_source(void *unused, unsigned char *out, size_t len) {
    (void)unused;
    #ifdef ESP_PLATFORM
    bool own_entropy = !pkcs11_radio_on();
    if (own_entropy) {
        bootloader_random_enable();
    }
    #endif
    mbedtls_entropy_context entropy;
    mbedtls_entropy_init(&entropy);
    int ret = 0;
    while (ret == 0 && len > 0) {
        size_t chunk = len < MBEDTLS_ENTROPY_BLOCK_SIZE ? len : MBEDTLS_ENTROPY_BLOCK_SIZE;
        ret = mbedtls_entropy_func(&entropy, out, chunk);
        out += chunk;
        len -= chunk;
    }
    mbedtls_entropy_free(&entropy);
    #ifdef ESP_PLATFORM
    if (own_entropy) {
        bootloader_random_disable();
    }
    #endif
    return ret;
}

static int pkcs11_drbg_seed(void) {
    static const unsigned char personalisation[] = "MicroPython _pkcs11 token DRBG";
    mbedtls_ctr_drbg_init(&pkcs11_drbg);
    int ret = mbedtls_ctr_drbg_seed(&pkcs11_drbg, pkcs11_entropy_source, NULL,
        personalisation, sizeof(personalisation) - 1);
    if (ret != 0) {
        mbedtls_ctr_drbg_free(&pkcs11_drbg);
        return ret;
    }
    pkcs11_drbg_seeded = true;
    return 0;
}

int pkcs11_rng(void *unused, unsigned char *out, size_t len) {
    (void)unused;
    int ret = 0;
    DRBG_LOCK();
    if (!pkcs11_drbg_seeded) {
        ret = pkcs11_drbg_seed();
    }
    while (ret == 0 && len > 0) {
        size_t chunk = len < MBEDTLS_CTR_DRBG_MAX_REQUEST ? len : MBEDTLS_CTR_DRBG_MAX_REQUEST;
        ret = mbedtls_ctr_drbg_random(&pkcs11_drbg, out, chunk);
        out += chunk;
        len -= chunk;
    }
    DRBG_UNLOCK();
    return ret;
}

// Fresh entropy into the DRBG now (before a key is made): 0 on success.
int pkcs11_drbg_reseed(void) {
    int ret = 0;
    DRBG_LOCK();
    if (!pkcs11_drbg_seeded) {
        ret = pkcs11_drbg_seed();
    } else {
        ret = mbedtls_ctr_drbg_reseed(&pkcs11_drbg, NULL, 0);
    }
    DRBG_UNLOCK();
    return ret;
}

// p256-m draws its random numbers through p256_generate_random (named
// pkcs11_p256m_generate_random here, see p256m_names.h). mbedTLS 3.6's copy
// defines it on psa_generate_random, which p256m.c routes to pkcs11_rng;
// this weak definition serves copies that leave it to the integrator.
MP_WEAK int pkcs11_p256m_generate_random(uint8_t *output, unsigned output_size) {
    return pkcs11_rng(NULL, output, output_size) == 0 ? 0 : -1;
}

// random_bytes(n) -> bytes of length n from the DRBG.
static mp_obj_t pkcs11_random_bytes(mp_obj_t n_in) {
    mp_int_t n = mp_obj_get_int(n_in);
    if (n < 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("random_bytes: n must not be negative"));
    }
    vstr_t out;
    vstr_init_len(&out, n);
    if (pkcs11_rng(NULL, (unsigned char *)out.buf, n) != 0) {
        mbedtls_platform_zeroize(out.buf, n);
        vstr_clear(&out);
        pkcs11_raise_rng();
    }
    return mp_obj_new_bytes_from_vstr(&out);
}
MP_DEFINE_CONST_FUN_OBJ_1(pkcs11_random_bytes_obj, pkcs11_random_bytes);
