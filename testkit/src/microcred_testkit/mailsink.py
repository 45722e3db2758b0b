"""A local SMTP server for development and the demo: keeps every message as a file.

`python -m microcred_testkit.mailsink --port 8025 --dir .state/mail`
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
from pathlib import Path

from aiosmtpd.controller import Controller


class MailDirHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.count = len(list(folder.glob("*.eml")))

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd API)
        self.count += 1
        raw = envelope.original_content or envelope.content
        (self.folder / f"{self.count:07d}.eml").write_bytes(raw)
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        line = {"to": envelope.rcpt_tos, "subject": str(msg["Subject"]),
                "message_id": str(msg["Message-ID"])}
        with (self.folder / "index.jsonl").open("a", encoding="utf-8") as index:
            index.write(json.dumps(line, ensure_ascii=False) + "\n")
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", default=".state/mail")
    args = parser.parse_args()
    controller = Controller(MailDirHandler(Path(args.dir)), hostname=args.host, port=args.port,
                            enable_SMTPUTF8=True)
    controller.start()
    print(f"mail sink on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    try:
        asyncio.run(asyncio.Event().wait())
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
