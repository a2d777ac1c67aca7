// Locked production mode (docs/security.md, "Locked production mode").
//
// A board whose configuration sets MICROPY_BOARD_LOCK (qemu and ESP32 boards)
// calls pkcs11_lock_boot() from its main.c right after the frozen _boot.py has
// mounted the filesystems (firmware/patches/*-lock-boot.patch). When the lock
// marker MICROPY_BOARD_LOCK_FILE exists in the token's directory, the board is
// locked: the application named in the marker runs with Ctrl-C off, and the
// REPL (friendly, raw, raw-paste: everything mpremote uses) is never started.
// When the application ends, the board waits a second and runs it again.
//
// The marker lives in the token's own storage (the ESP32 token partition,
// encrypted under flash encryption; the qemu flash image), next to the keys:
// erasing that storage removes both, and nothing else removes the marker once
// no Python code but the application runs. Fail closed: a marker that cannot
// be read locks the board with the default application, and so does token
// storage that holds data but did not mount (MICROPY_BOARD_LOCK_STORAGE_USED()).
//
// The marker's first line names the application:
//   main.py            (or any path) a file, run like main.py
//   frozen:<module>    a module frozen into the firmware, imported with
//                      sys.path limited to the frozen modules
// An empty marker means main.py.

#include <string.h>

#include "py/runtime.h"
#include "py/builtin.h"
#include "py/stream.h"
#include "py/lexer.h"
#include "py/compile.h"
#include "py/mphal.h"
#include "modpkcs11.h"

// The esp32 port compiles user C module sources twice: into the main component
// (libmain.a) and, through usermod's INTERFACE_SOURCES, into micropython.elf.
// Nothing in main.c calls other modules, but the lock boot hook is called from
// main.c, which pulls libmain.a's copy of this file in as well. Weak definitions
// let the linker keep the first copy (the elf's) instead of failing on both.
#ifdef ESP_PLATFORM
#define LOCK_LINKAGE __attribute__((weak))
#else
#define LOCK_LINKAGE
#endif

#if MICROPY_BOARD_LOCK

#include "extmod/vfs.h"
#include "shared/runtime/interrupt_char.h"

#ifndef MICROPY_BOARD_LOCK_STORAGE_USED
#define MICROPY_BOARD_LOCK_STORAGE_USED() (false)
#endif

#define LOCK_APP_MAX (64)
#define FROZEN_PREFIX "frozen:"

static bool lock_active;

// Reads the marker's first line into app (NUL-terminated, "" when empty).
// Returns false when there is no marker.
static bool lock_read_marker(char *app, size_t size) {
    app[0] = 0;
    if (mp_import_stat(MICROPY_BOARD_LOCK_FILE) != MP_IMPORT_STAT_FILE) {
        return false;
    }
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t args[2] = {
            mp_obj_new_str(MICROPY_BOARD_LOCK_FILE, strlen(MICROPY_BOARD_LOCK_FILE)),
            MP_OBJ_NEW_QSTR(MP_QSTR_rb),
        };
        mp_obj_t f = mp_vfs_open(2, args, (mp_map_t *)&mp_const_empty_map);
        int err = 0;
        mp_uint_t n = mp_stream_rw(f, app, size - 1, &err, MP_STREAM_RW_READ);
        mp_stream_close(f);
        nlr_pop();
        if (err != 0) {
            n = 0;
        }
        app[n] = 0;
        for (mp_uint_t i = 0; i < n; i++) {
            if (app[i] == '\n' || app[i] == '\r') {
                app[i] = 0;
                break;
            }
        }
    } else {
        // A marker that exists but cannot be read still locks (default app).
        app[0] = 0;
    }
    return true;
}

// Runs the application; exceptions are printed, never fall through to a REPL.
static void lock_run_app(const char *app) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_hal_set_interrupt_char(-1);
        if (strncmp(app, FROZEN_PREFIX, strlen(FROZEN_PREFIX)) == 0) {
            // Only frozen modules: a file on a writable filesystem cannot
            // stand in for the application.
            const char *name = app + strlen(FROZEN_PREFIX);
            mp_obj_list_t *path = MP_OBJ_TO_PTR(mp_sys_path);
            path->len = 0;
            mp_obj_list_append(mp_sys_path, MP_OBJ_NEW_QSTR(MP_QSTR__dot_frozen));
            mp_import_name(qstr_from_str(name), mp_const_none, MP_OBJ_NEW_SMALL_INT(0));
        } else {
            const char *file = app[0] ? app : "main.py";
            mp_lexer_t *lex = mp_lexer_new_from_file(qstr_from_str(file));
            qstr source_name = lex->source_name;
            mp_parse_tree_t tree = mp_parse(lex, MP_PARSE_FILE_INPUT);
            mp_obj_t fun = mp_compile(&tree, source_name, false);
            mp_call_function_0(fun);
        }
        mp_handle_pending(true);
        nlr_pop();
    } else {
        mp_handle_pending(false);
        mp_obj_print_exception(&mp_plat_print, MP_OBJ_FROM_PTR(nlr.ret_val));
    }
}

// True when a filesystem is mounted exactly at path.
static bool lock_mounted(const char *path) {
    size_t len = strlen(path);
    for (mp_vfs_mount_t *vfs = MP_STATE_VM(vfs_mount_table); vfs != NULL; vfs = vfs->next) {
        if (vfs->len == len && memcmp(vfs->str, path, len) == 0) {
            return true;
        }
    }
    return false;
}

LOCK_LINKAGE bool pkcs11_lock_boot(void) {
    char app[LOCK_APP_MAX];
    bool marker = lock_read_marker(app, sizeof(app));
    if (!marker) {
        if (lock_mounted(MICROPY_BOARD_LOCK_MOUNT)
            || !MICROPY_BOARD_LOCK_STORAGE_USED()) {
            lock_active = false;
            return false;
        }
        // The token storage holds data but did not mount: it may hold keys
        // and a marker we cannot see. Stay locked; erasing it unlocks.
        mp_printf(&mp_plat_print, "locked: token storage does not mount; erase it to unlock\n");
        for (;;) {
            mp_hal_delay_ms(1000);
        }
    }
    lock_active = true;
    mp_printf(&mp_plat_print, "locked: running %s\n", app[0] ? app : "main.py");
    lock_run_app(app);
    mp_printf(&mp_plat_print, "locked: application ended; restarting it\n");
    mp_hal_delay_ms(1000);
    return true;
}

LOCK_LINKAGE bool pkcs11_lock_active(void) {
    return lock_active;
}

#ifdef ESP_PLATFORM
#include "esp_partition.h"

// True when the first two blocks of the "token" partition are not all erased.
// Raw reads: under flash encryption erased flash reads as 0xff only raw.
LOCK_LINKAGE bool pkcs11_esp32_token_used(void) {
    const esp_partition_t *part = esp_partition_find_first(ESP_PARTITION_TYPE_DATA,
        ESP_PARTITION_SUBTYPE_ANY, "token");
    if (part == NULL) {
        return false;
    }
    uint8_t buf[256];
    size_t end = part->size < 8192 ? part->size : 8192;
    for (size_t off = 0; off < end; off += sizeof(buf)) {
        if (esp_partition_read_raw(part, off, buf, sizeof(buf)) != ESP_OK) {
            return true;
        }
        for (size_t i = 0; i < sizeof(buf); i++) {
            if (buf[i] != 0xff) {
                return true;
            }
        }
    }
    return false;
}
#endif

#endif // MICROPY_BOARD_LOCK

// _pkcs11.lock_file(): the marker's path on this firmware, or None when the
// firmware has no locked mode (unix). p11board lock writes it.
static mp_obj_t pkcs11_lock_file(void) {
    #if MICROPY_BOARD_LOCK
    return mp_obj_new_str(MICROPY_BOARD_LOCK_FILE, strlen(MICROPY_BOARD_LOCK_FILE));
    #else
    return mp_const_none;
    #endif
}
LOCK_LINKAGE MP_DEFINE_CONST_FUN_OBJ_0(pkcs11_lock_file_obj, pkcs11_lock_file);

// _pkcs11.token_storage_used(): whether the board's token storage holds
// anything but erased flash, read raw (under ESP32 flash encryption erased flash
// does not read as 0xff through the decrypting reads p11boot has); None when
// the firmware cannot tell.
static mp_obj_t pkcs11_token_storage_used(void) {
    #if MICROPY_BOARD_LOCK
    return mp_obj_new_bool(MICROPY_BOARD_LOCK_STORAGE_USED());
    #else
    return mp_const_none;
    #endif
}
LOCK_LINKAGE MP_DEFINE_CONST_FUN_OBJ_0(pkcs11_token_storage_used_obj, pkcs11_token_storage_used);

// _pkcs11.locked(): True when this boot found the marker.
static mp_obj_t pkcs11_locked(void) {
    #if MICROPY_BOARD_LOCK
    return mp_obj_new_bool(lock_active);
    #else
    return mp_const_false;
    #endif
}
LOCK_LINKAGE MP_DEFINE_CONST_FUN_OBJ_0(pkcs11_locked_obj, pkcs11_locked);
