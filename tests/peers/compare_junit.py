#!/usr/bin/env python3
# tests/peers/compare_junit.py: compares two regrtest --junit-xml reports,
# one run without the library and one with it, test case by test case.
# Owns only the comparison; run-peers.sh owns running the suites.
#
# Usage: compare_junit.py WITHOUT.xml WITH.xml [--ids-only | --count-ok]
#   (default)   a summary, and every case that fails only with the library
#   --ids-only  only those cases' ids, one per line ("test_socket.Class.test")
#   --count-ok  how many cases ran and passed with the library
import sys
import xml.etree.ElementTree as ET

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


def outcome(case):
    """What one <testcase> says happened to it."""
    if case.find("failure") is not None or case.find("error") is not None:
        return FAILED
    if case.find("skipped") is not None or case.get("result") == "skipped":
        return SKIPPED
    if case.get("status", "run") != "run":
        return SKIPPED
    return PASSED


def case_id(case):
    # regrtest writes the whole id into name ("test.test_socket.Class.test");
    # the package prefix is the same for every case and only gets in the way.
    name = case.get("name", "")
    classname = case.get("classname")
    if classname and not name.startswith(classname + "."):
        name = classname + "." + name
    return name[len("test."):] if name.startswith("test.") else name


def read_report(path):
    """{case id: outcome}; a case reported twice counts as failed if either did."""
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as error:
        # A run that crashed or hung before writing its report: no cases.
        print(f"compare_junit: {path}: {error}", file=sys.stderr)
        return {}
    cases = {}
    for case in root.iter("testcase"):
        key, result = case_id(case), outcome(case)
        if cases.get(key) != FAILED:
            cases[key] = result
    return cases


def main(argv):
    mode = None
    paths = []
    for argument in argv[1:]:
        if argument in ("--ids-only", "--count-ok"):
            mode = argument
        else:
            paths.append(argument)
    if len(paths) != 2:
        print("usage: compare_junit.py WITHOUT.xml WITH.xml [--ids-only | --count-ok]",
              file=sys.stderr)
        return 2
    without, with_library = (read_report(path) for path in paths)

    # A case missing from the run with the library is the module's failure
    # (run-peers.sh reports modules that fail only with the library).
    only_with = sorted(key for key, result in with_library.items()
                       if result == FAILED and without.get(key) != FAILED)
    only_without = sorted(key for key, result in without.items()
                          if result == FAILED and with_library.get(key) != FAILED)
    passed = sum(1 for result in with_library.values() if result == PASSED)

    if mode == "--ids-only":
        for key in only_with:
            print(key)
        return 0
    if mode == "--count-ok":
        print(passed)
        return 0

    def count(cases, wanted):
        return sum(1 for result in cases.values() if result == wanted)

    for label, cases in (("without the library", without), ("with the library", with_library)):
        print(f"compare_junit: {label:20} {len(cases):5} cases: {count(cases, PASSED)} passed, "
              f"{count(cases, FAILED)} failed, {count(cases, SKIPPED)} skipped")
    missing = sorted(set(without) - set(with_library))
    if missing:
        print(f"compare_junit: {len(missing)} cases did not report with the library "
              f"(first: {missing[0]})")
    for key in only_without:
        print(f"compare_junit: failed only without the library: {key}")
    for key in only_with:
        print(f"compare_junit: failed only with the library: {key}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
