"""Checks `prefect deploy` runs before it registers the nightly deployment (a build step in prefect.yaml).

`python -m flows.preflight` exits 1 with a Chinese message naming what is missing when the deployment
would not work unattended: `USCC_HOME` (the checkout the worker runs from) or `USCC_DATA_DIR` (the city's
data) unset or wrong, or no `PREFECT_API_URL` (without it `prefect deploy` talks to a throwaway temporary
server and the deployment vanishes with it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flows.params import CHECKOUT, ParameterError, check_data_dir


def problems(env: dict[str, str]) -> list[str]:
    """What is wrong with this environment for deploying, in Chinese (empty when nothing)."""
    found = []
    home = env.get("USCC_HOME", "").strip()
    if not home:
        found.append("环境变量 USCC_HOME 未设置：请 export USCC_HOME=<本程序目录>（worker 从这里运行夜间任务）。")
    elif not (Path(home) / "flows" / "nightly.py").is_file():
        found.append(f"USCC_HOME={home} 不是本程序目录（其中没有 flows/nightly.py）。")
    data = env.get("USCC_DATA_DIR", "").strip()
    if not data:
        found.append("环境变量 USCC_DATA_DIR 未设置：请 export USCC_DATA_DIR=<数据目录>（含 extracts/ 的目录）。")
    else:
        try:
            path = check_data_dir(data)
        except ParameterError as exc:
            found.append(f"USCC_DATA_DIR：{exc}")
        else:
            if CHECKOUT in path.resolve().parents and not env.get("USCC_ALLOW_DATA_IN_CHECKOUT"):
                found.append(f"USCC_DATA_DIR={data} 在程序目录 {CHECKOUT} 之内：部署后报告和台账会写进程序目录，"
                             "升级程序时可能丢失。请把数据放在程序目录之外。")
    if not env.get("PREFECT_API_URL", "").strip():
        found.append("PREFECT_API_URL 未设置：没有它，prefect deploy 会把部署写进一个临时服务器，关闭即消失。"
                     "请先 prefect server start，然后 export PREFECT_API_URL=http://127.0.0.1:4200/api。")
    return found


def main() -> int:
    found = problems(dict(os.environ))
    for line in found:
        print(f"部署前检查未通过：{line}", file=sys.stderr)
    if not found:
        print("部署前检查通过：USCC_HOME、USCC_DATA_DIR、PREFECT_API_URL 均已设置。")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
