# test_token_ckr.py: the end of every group: R as one JSON line.
def J(v):
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, (list, tuple)):
        return [J(x) for x in v]
    return v
print(json.dumps({k: J(v) for k, v in R.items()}))
