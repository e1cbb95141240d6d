"""Reads `redocly lint --format=json` output: fails on any error, and on any warning that
known-lint-warnings.txt does not list; prints every problem either way.

usage: python check_lint.py REDOCLY_JSON KNOWN_WARNINGS_TXT
"""

import json
import sys


def main(report_path: str, known_path: str) -> int:
    with open(report_path, encoding="utf-8") as f:
        report = json.load(f)
    with open(known_path, encoding="utf-8") as f:
        known = {line.strip() for line in f if line.strip() and not line.startswith("#")}
    seen, unexpected, errors = set(), [], []
    for problem in report["problems"]:
        pointer = problem["location"][0].get("pointer", "") if problem.get("location") else ""
        key = f"{problem['ruleId']} {pointer}"
        line = problem["location"][0].get("start", {}).get("line", "?") if problem.get("location") else "?"
        print(f"  {problem['severity']:5} {key} (line {line}): {problem['message']}")
        if problem["severity"] == "error":
            errors.append(key)
        elif key in known:
            seen.add(key)
        else:
            unexpected.append(key)
    totals = report["totals"]
    print(f"redocly: {totals['errors']} errors, {totals['warnings']} warnings ({len(seen)} known)")
    for key in sorted(known - seen):
        print(f"redocly: note: '{key}' is no longer reported: delete it from known-lint-warnings.txt and README.md")
    for key in unexpected:
        print(f"redocly: FAILED: new warning '{key}': fix the spec, or list it with a reason")
    return 1 if errors or unexpected else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
