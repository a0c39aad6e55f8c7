#!/usr/bin/python3
"""The script a user would otherwise write: mean p and quantiles of p over the
scored (response) tokens of log-prob files, with nothing but the standard
json module.

    baseline.py native FILE...      one {"logprobs": [...], "mask": [...]} per line
    baseline.py vllm-echo FILE...   one vLLM /v1/completions echo response per
                                    line, plus "prompt_chars"

Quantiles are the inverse empirical CDF: the ceil(q*n)-th smallest p.
"""
import json
import math
import sys


def main():
    fmt, paths = sys.argv[1], sys.argv[2:]
    ps = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                d = json.loads(line)
                if fmt == "native":
                    mask = d.get("mask")
                    for i, lp in enumerate(d["logprobs"]):
                        if mask is None or mask[i]:
                            ps.append(math.exp(lp))
                else:
                    start = d["prompt_chars"]
                    n = d["usage"]["prompt_tokens"]
                    for ch in d["choices"]:
                        lp = ch["logprobs"]
                        for tl, off in zip(lp["token_logprobs"][:n], lp["text_offset"][:n]):
                            if tl is not None and off >= start:
                                ps.append(math.exp(tl))
    ps.sort()
    n = len(ps)
    out = {"tokens": n, "mean_p": sum(ps) / n}
    for q in (5, 10, 25, 50, 75, 90, 95):
        out["p%02d" % q] = ps[max(math.ceil(q / 100 * n) - 1, 0)]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
