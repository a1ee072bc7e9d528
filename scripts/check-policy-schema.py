#!/usr/bin/env python3
"""Every policy in the repository validates against schema/policy.schema.json, and a few
broken ones do not (so the check is not vacuous).

The policies: examples/policies/*.yaml and the `policy` of every scenario in
tests/scenarios/ (the behaviour all four languages test). Validated with the reference
`jsonschema` implementation (Draft 2020-12), as an editor would.
"""
import glob
import json
import os
import sys

import jsonschema
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
schema = json.load(open(os.path.join(ROOT, "schema/policy.schema.json")))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

policies = {}
for path in sorted(glob.glob(os.path.join(ROOT, "examples/policies/*.yaml"))):
    policies[os.path.relpath(path, ROOT)] = yaml.safe_load(open(path))
for path in sorted(glob.glob(os.path.join(ROOT, "tests/scenarios/*.json"))):
    doc = json.load(open(path))
    if "policy" in doc:
        policies[os.path.relpath(path, ROOT)] = doc["policy"]

failed = 0
for name, policy in policies.items():
    errors = sorted(validator.iter_errors(policy), key=lambda e: list(e.path))
    for e in errors[:5]:
        print(f"{name}: {'.'.join(map(str, e.path)) or '(root)'}: {e.message}")
    failed += bool(errors)

broken = [
    {"routes": [{"name": "x", "deployments": ["a"], "stratgy": "priority"}]},
    {"routes": [{"name": "x", "deployments": ["a"], "timeouts": {"total": "ten seconds"}}]},
    {"guards": [{"name": "g", "detect": ["passport"], "action": "redact"}]},
    {"unknown_top_level": 1},
]
for b in broken:
    if validator.is_valid(b):
        print(f"the schema accepted a broken policy: {b}")
        failed += 1

print(f"policy schema: {len(policies)} policies checked, {len(broken)} broken ones refused, {failed} problem(s)")
sys.exit(1 if failed else 0)
