"""Run one loopback server: ``python -m tests.servers openai --port 0``."""

from __future__ import annotations

import argparse
import threading

from . import SERVERS


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.servers", description=__doc__)
    ap.add_argument("kind", choices=sorted(SERVERS))
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument(
        "--api-key", default=None, help="require this Bearer key (lollms defaults to its test key)"
    )
    args = ap.parse_args()
    cls = SERVERS[args.kind]
    srv = cls(api_key=args.api_key) if args.api_key else cls()
    srv.start(port=args.port)
    print(srv.url, flush=True)
    if srv.api_key:
        print(f"api key: {srv.api_key}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
