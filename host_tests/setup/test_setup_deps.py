"""Every program the tests, the CLI, the demo and the bench run must come from a Debian
package that firmware/install-deps.sh installs (or one a minimal Debian always has):
a bare Debian 12 root runs the README's commands with nothing else installed."""

import functools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("host_tests", "tools", "demo", "bench")
# Programs named as the first word of an argv list (given to subprocess, or a list whose
# next word is an option), or looked up with shutil.which.
COMMAND = re.compile(r'shutil\.which\(\s*"([^"]+)"'
                     r'|(?:run|Popen|check_output|check_call)\(\s*\[\s*"([^"]+)"'
                     r'|\[\s*"([a-z][\w.+-]*)",\s*f?"-')
# What a bare root has before install-deps runs: debootstrap minbase + the README's prerequisites.
BARE_ROOT_EXTRAS = {"python3", "git", "make", "gcc"}


def _install_deps_packages() -> set[str]:
    text = (ROOT / "firmware" / "install-deps.sh").read_text()
    body = re.search(r"PKGS=\((.*?)\)", text, re.S)
    assert body, "install-deps.sh has no PKGS=( ... ) list"
    return set(body.group(1).split())


def _bench_deps() -> dict[str, set[str]]:
    """Debian packages bench/install-bench-deps.sh installs for `make bench` only, and the
    programs they bring (a program the bench runs may come from one of them)."""
    text = (ROOT / "bench" / "install-bench-deps.sh").read_text()
    pkgs = {p for m in re.finditer(r"PKGS=\((.*?)\)", text, re.S) for p in m.group(1).split()}
    return {"packages": pkgs, "programs": {"softhsm2-util", "qemu-system-riscv32",
                                           "riscv64-unknown-elf-gcc"}}


def _commands_used() -> dict[str, str]:
    found: dict[str, str] = {}
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for match in COMMAND.finditer(path.read_text()):
                name = match.group(1) or match.group(2) or match.group(3)
                if match.group(3) and shutil.which(name) is None:
                    continue  # an argument list that starts with a word, not a program
                found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def _owning_package(program: str) -> str | None:
    where = shutil.which(program)
    if where is None:
        return None
    # merged /usr: dpkg may have recorded /bin/x for what PATH finds as /usr/bin/x
    candidates = [where, str(Path(where).resolve())] + [f"{d}/{program}" for d in ("/bin", "/usr/bin", "/sbin", "/usr/sbin")]
    for candidate in candidates:
        out = subprocess.run(["dpkg-query", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":", 1)[0].strip()
    return None


@functools.cache
def _installed_with_them() -> frozenset[str]:
    """Packages apt installs along with install-deps' list (their dependencies)."""
    roots = sorted(_install_deps_packages() | {"gcc", "make", "git", "python3"})
    out = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                          "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *roots],
                         capture_output=True, text=True).stdout
    return frozenset(line.strip().split(":")[-1].strip() for line in out.splitlines()
                     if line and not line.startswith(" ") or "Depends:" in line)


def _always_present(package: str) -> bool:
    fields = subprocess.run(["dpkg-query", "-W", "-f=${Essential} ${Priority}", package],
                            capture_output=True, text=True).stdout.split()
    return "yes" in fields or "required" in fields


def test_the_scan_finds_the_programs_we_know_we_run():
    used = _commands_used()
    assert {"openssl", "socat", "qemu-system-arm"} <= set(used), used


@pytest.mark.parametrize("program", sorted(_commands_used()))
def test_program_comes_from_a_package_install_deps_installs(program):
    if (Path(sys.executable).parent / program).exists():
        return  # a console script of the virtual environment (pip, not apt)
    if program in BARE_ROOT_EXTRAS:
        return
    bench = _bench_deps()
    if program in bench["programs"] and _commands_used()[program].startswith("bench/"):
        # installed by `make bench` itself (not by make deps): check that script's list
        package = _owning_package(program)
        assert package is None or package in bench["packages"], (
            f"{program} comes from {package}, which bench/install-bench-deps.sh does not install")
        return
    package = _owning_package(program)
    assert package is not None, f"{program} (run by {_commands_used()[program]}) is not installed by any Debian package here"
    assert (package in _install_deps_packages() or package in _installed_with_them()
            or _always_present(package)), (
        f"{program} comes from the Debian package {package}, which firmware/install-deps.sh does not "
        f"install and a minimal Debian 12 lacks (run by {_commands_used()[program]})")
