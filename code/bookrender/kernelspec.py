"""`python -m bookrender.kernelspec PREFIX`: the python3 kernel of PREFIX starts without its TCP warning.

ipykernel 7 logs "Kernel is running over TCP without encryption" at every start; Quarto and
nbclient print it into the render log, where it reads like a problem of the book. The kernel is
local (loopback), so its log level is raised to ERROR in the kernelspec: real errors still show.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

FLAG = "--IPKernelApp.log_level=ERROR"


def quiet(prefix) -> Path:
    path = Path(prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json"
    spec = json.loads(path.read_text(encoding="utf-8"))
    if FLAG not in spec["argv"]:
        spec["argv"].append(FLAG)
        path.write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m bookrender.kernelspec PREFIX", file=sys.stderr)
        raise SystemExit(2)
    try:
        quiet(sys.argv[1])
    except (OSError, ValueError, KeyError) as e:
        print(f"bookrender.kernelspec: error: {e}", file=sys.stderr)
        raise SystemExit(2)
