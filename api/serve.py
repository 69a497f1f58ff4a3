"""One API process on a listening socket the launcher opened: `python -m api.serve --fd N`.

Why the launcher opens the port once and hands every API process the same socket, rather than
each process binding it with SO_REUSEPORT:
- one accept queue: a connection waits in it until *some* process accepts it. With
  SO_REUSEPORT each process has its own queue and the kernel hashes every new connection to
  one of them; connections queued for a process that is killed are reset, and the ones hashed
  to it while it restarts are refused. Here a kill -9 loses only the requests that process had
  already accepted (a client retries those, with its Idempotency-Key where money moves);
- the port stays bound while processes come and go, so no other program can take it during a
  restart, and a moment with no API process alive delays requests instead of refusing them;
- the kernel still spreads the load: every idle process waits in accept on the same queue.

uvicorn's own `--fd` builds the socket as AF_UNIX, so this module passes uvicorn the socket
itself (its family read from the descriptor), the way gunicorn's workers do.
"""

from __future__ import annotations

import argparse
import socket
import sys

import uvicorn


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.serve")
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening TCP socket")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.fd)  # family and type come from the descriptor
    config = uvicorn.Config("api.app:app", access_log=False, log_level="info")
    uvicorn.Server(config).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
