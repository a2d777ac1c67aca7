// qemu.Flash: a block device backed by a file on the host, reached through
// ARM semihosting. The file is "flash.img" in qemu's working directory, so each
// qemu run chooses its image by the folder it starts in; it is created when
// missing. Geometry: 4096-byte blocks, at least 512 of them (2 MiB); a larger
// existing image keeps its size. Bytes past the end of a short (new) file read
// as 0xff, like erased flash; erasing is a no-op (littlefs does not need it).
//
// _boot.py mounts a littlefs2 filesystem on it at "/" (formatting a blank one).

#include <string.h>

#include "py/runtime.h"
#include "py/mperrno.h"
#include "extmod/vfs.h"
#include "qemu_port.h"

#define FLASH_FILE          "flash.img"
#define FLASH_BLOCK_SIZE    (4096)
#define FLASH_MIN_BLOCKS    (512)

typedef struct _qemu_flash_obj_t {
    mp_obj_base_t base;
} qemu_flash_obj_t;

// The host file stays open across soft resets.
static int32_t flash_fd = -1;
static uint32_t flash_blocks;

static void flash_open(void) {
    if (flash_fd >= 0) {
        return;
    }
    int32_t fd = qemu_semihost_open(FLASH_FILE, SEMIHOST_MODE_RPB);
    if (fd < 0) {
        fd = qemu_semihost_open(FLASH_FILE, SEMIHOST_MODE_WPB);
    }
    if (fd < 0) {
        mp_raise_OSError(MP_ENODEV);
    }
    int32_t len = qemu_semihost_flen(fd);
    uint32_t blocks = len > 0 ? (uint32_t)len / FLASH_BLOCK_SIZE : 0;
    flash_blocks = blocks > FLASH_MIN_BLOCKS ? blocks : FLASH_MIN_BLOCKS;
    flash_fd = fd;
}

static const mp_obj_type_t qemu_flash_type;
static const qemu_flash_obj_t qemu_flash_obj = {{&qemu_flash_type}};

static mp_obj_t qemu_flash_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    mp_arg_check_num(n_args, n_kw, 0, 0, false);
    flash_open();
    return MP_OBJ_FROM_PTR(&qemu_flash_obj);
}

// Checks the range and seeks; returns 0 or a negative errno.
static int flash_seek(mp_obj_t block_in, mp_obj_t offset_in, size_t len) {
    mp_int_t block = mp_obj_get_int(block_in);
    mp_int_t offset = offset_in == MP_OBJ_NULL ? 0 : mp_obj_get_int(offset_in);
    uint64_t start = (uint64_t)block * FLASH_BLOCK_SIZE + offset;
    if (block < 0 || offset < 0 || start + len > (uint64_t)flash_blocks * FLASH_BLOCK_SIZE) {
        return -MP_EINVAL;
    }
    if (qemu_semihost_seek(flash_fd, (uint32_t)start) != 0) {
        return -MP_EIO;
    }
    return 0;
}

// readblocks(block, buf[, offset])
static mp_obj_t qemu_flash_readblocks(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[2], &bufinfo, MP_BUFFER_WRITE);
    int ret = flash_seek(args[1], n_args == 4 ? args[3] : MP_OBJ_NULL, bufinfo.len);
    if (ret == 0) {
        int32_t left = qemu_semihost_read(flash_fd, bufinfo.buf, bufinfo.len);
        if (left < 0 || (size_t)left > bufinfo.len) {
            ret = -MP_EIO;
        } else if (left > 0) {
            // Past the end of the host file: erased flash.
            memset((uint8_t *)bufinfo.buf + bufinfo.len - left, 0xff, left);
        }
    }
    return MP_OBJ_NEW_SMALL_INT(ret);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(qemu_flash_readblocks_obj, 3, 4, qemu_flash_readblocks);

// writeblocks(block, buf[, offset])
static mp_obj_t qemu_flash_writeblocks(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t bufinfo;
    mp_get_buffer_raise(args[2], &bufinfo, MP_BUFFER_READ);
    int ret = flash_seek(args[1], n_args == 4 ? args[3] : MP_OBJ_NULL, bufinfo.len);
    if (ret == 0 && qemu_semihost_write(flash_fd, bufinfo.buf, bufinfo.len) != 0) {
        ret = -MP_EIO;
    }
    return MP_OBJ_NEW_SMALL_INT(ret);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(qemu_flash_writeblocks_obj, 3, 4, qemu_flash_writeblocks);

static mp_obj_t qemu_flash_ioctl(mp_obj_t self_in, mp_obj_t op_in, mp_obj_t arg_in) {
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(flash_blocks);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(FLASH_BLOCK_SIZE);
        case MP_BLOCKDEV_IOCTL_INIT:
        case MP_BLOCKDEV_IOCTL_DEINIT:
        case MP_BLOCKDEV_IOCTL_SYNC:
        case MP_BLOCKDEV_IOCTL_BLOCK_ERASE:
            return MP_OBJ_NEW_SMALL_INT(0);
        default:
            return mp_const_none;
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(qemu_flash_ioctl_obj, qemu_flash_ioctl);

static const mp_rom_map_elem_t qemu_flash_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&qemu_flash_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&qemu_flash_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&qemu_flash_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(qemu_flash_locals_dict, qemu_flash_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    qemu_flash_type,
    MP_QSTR_Flash,
    MP_TYPE_FLAG_NONE,
    make_new, qemu_flash_make_new,
    locals_dict, &qemu_flash_locals_dict
    );

static const mp_rom_map_elem_t qemu_module_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_qemu) },
    { MP_ROM_QSTR(MP_QSTR_Flash), MP_ROM_PTR(&qemu_flash_type) },
};
static MP_DEFINE_CONST_DICT(qemu_module_globals, qemu_module_globals_table);

const mp_obj_module_t qemu_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&qemu_module_globals,
};

MP_REGISTER_MODULE(MP_QSTR_qemu, qemu_module);

// True when blocks 0 and 1 (littlefs's superblocks) hold anything but erased
// bytes: the image is in use (locked mode treats such an image that does not
// mount as locked, see firmware/cmodule/pkcs11/lock.c).
bool qemu_flash_used(void) {
    uint8_t buf[256];
    if (flash_fd < 0) {
        int32_t fd = qemu_semihost_open(FLASH_FILE, SEMIHOST_MODE_RPB);
        if (fd < 0) {
            return false;
        }
        flash_fd = fd;
        int32_t len = qemu_semihost_flen(fd);
        uint32_t blocks = len > 0 ? (uint32_t)len / FLASH_BLOCK_SIZE : 0;
        flash_blocks = blocks > FLASH_MIN_BLOCKS ? blocks : FLASH_MIN_BLOCKS;
    }
    for (uint32_t off = 0; off < 2 * FLASH_BLOCK_SIZE; off += sizeof(buf)) {
        if (qemu_semihost_seek(flash_fd, off) != 0) {
            return true;
        }
        int32_t left = qemu_semihost_read(flash_fd, buf, sizeof(buf));
        if (left < 0) {
            return true;
        }
        for (size_t i = 0; i < sizeof(buf) - (size_t)left; i++) {
            if (buf[i] != 0xff) {
                return true;
            }
        }
    }
    return false;
}
