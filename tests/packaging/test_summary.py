#!/usr/bin/python3
"""scripts/test-summary on made-up logs: every failed suite counts.

The closing line of `make test` once said "1 failed" while two suites had
failed: a suite that crashed printed no "N passed, N failed" line, and only
the checks counted. Each case below writes unit.log / blackbox.log /
packaging.log as the runners write them (scripts/run-tests,
tests/packaging/run) into a temp dir, runs the script on it, and compares
its closing line and exit status with what the logs say, worked by hand.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SCRIPT = os.path.join(ROOT, "scripts", "test-summary")
UNIT_OK = "[====] Synthesis: Tested: 10 | Passing: 10 | Failing: 0 | Crashing: 0\n"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   - " + name)
    else:
        failed += 1
        print("FAIL - %s: %s" % (name, detail))


def bb_suite(path, body, ok):
    """One black-box suite as scripts/run-tests logs it."""
    return "== %s\n%s%s-- %s: 1 s\n" % (path, body, "" if ok else "FAILED: %s\n" % path, path)


def pkg_suite(path, body, verdict):
    return "== %s\n%s-- %s %s (1 s)\n" % (path, body, verdict, path)


def summary(files):
    """(closing line, exit status, whole output) of test-summary on files."""
    d = tempfile.mkdtemp(prefix="dcv-summary-")
    try:
        for name, text in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        p = subprocess.run([SCRIPT, d], capture_output=True, text=True, timeout=60)
        last = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else ""
        return last, p.returncode, p.stdout + p.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def expect(name, files, want_passed, want_failed, want_skipped=0):
    last, rc, out = summary(files)
    want = "all suites: %d passed, %d failed, %d skipped" % (want_passed, want_failed,
                                                            want_skipped)
    check("%s: '%s', exit %d" % (name, want, 1 if want_failed else 0),
          last == want and rc == (1 if want_failed else 0), "got '%s', exit %d\n%s"
          % (last, rc, out))
    return out


def main():
    api_fail = bb_suite("tests/blackbox/test_api.py", "ok   - a\nFAIL - b\n3 passed, 1 failed\n",
                        False)
    crashed = bb_suite("tests/blackbox/test_lifecycle.py",
                       "ok   - c\nTraceback (most recent call last):\nSegmentation fault\n", False)
    shm_ok = bb_suite("tests/blackbox/test_shm.py", "5 passed, 0 failed\n", True)
    smoke_ok = pkg_suite("tests/packaging/test_smoke.sh", "smoke: 7 passed, 0 failed\n", "PASS")
    docker_skip = pkg_suite("tests/packaging/test_docker.sh",
                            "skip - no working docker or podman\n", "SKIP")
    docker_fail = pkg_suite("tests/packaging/test_docker.sh",
                            "Error: debian:bookworm-slim: image not known\n", "FAIL")

    expect("all pass", {"unit.log": UNIT_OK,
                        "blackbox.log": shm_ok + "blackbox: 1 passed, 0 failed\n",
                        "packaging.log": smoke_ok + docker_skip +
                        "packaging: 1 passed, 0 failed (1 skipped: docker)\n"}, 22, 0, 1)
    # the report: one suite with a failed check, one that crashed -> 2
    out = expect("a failed check and a crashed suite count 2",
                 {"unit.log": UNIT_OK,
                  "blackbox.log": api_fail + crashed + shm_ok + "blackbox: 1 passed, 2 failed\n",
                  "packaging.log": smoke_ok + "packaging: 1 passed, 0 failed (0 skipped)\n"},
                 25, 2)
    check("the crashed suite is named", "test_lifecycle.py" in out, out)
    expect("a packaging test failing with no count line counts 1",
           {"unit.log": UNIT_OK, "blackbox.log": shm_ok + "blackbox: 1 passed, 0 failed\n",
            "packaging.log": docker_fail + smoke_ok +
            "failed: docker\npackaging: 1 passed, 1 failed (0 skipped)\n"}, 22, 1)
    # a runner killed inside a suite: the suite never got a verdict (1) and
    # the runner printed no closing line (1)
    cut = "== tests/blackbox/test_api.py\nok   - a\nok   - b\n"
    out = expect("a suite cut short and its runner count 2",
                 {"unit.log": UNIT_OK, "blackbox.log": shm_ok + cut,
                  "packaging.log": smoke_ok + "packaging: 1 passed, 0 failed (0 skipped)\n"},
                 22, 2)
    check("the unfinished suite is named", re.search(r"test_api\.py did not finish", out), out)
    expect("two failed checks in one suite count 2, not 3",
           {"unit.log": UNIT_OK,
            "blackbox.log": bb_suite("tests/blackbox/test_api.py", "1 passed, 2 failed\n", False)
            + "blackbox: 0 passed, 1 failed\n"}, 11, 2)
    expect("no unit log counts 1", {"blackbox.log": shm_ok + "blackbox: 1 passed, 0 failed\n"},
           5, 1)
    expect("unit failures and crashes count",
           {"unit.log": "[====] Synthesis: Tested: 10 | Passing: 7 | Failing: 2 | Crashing: 1\n"},
           7, 3)
    print("summary: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
