"""An SMTP server that saves every message it receives as an .eml file in a mailbox folder.

python -m deploy.embedded.smtp_sink --port 2525 --mailbox .data/mailbox
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session


class MailboxHandler:
    def __init__(self, mailbox: Path) -> None:
        self.mailbox = mailbox
        self.mailbox.mkdir(parents=True, exist_ok=True)
        self._counter = itertools.count(1)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{next(self._counter):05d}.eml"
        content = envelope.original_content or b""
        header = f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode()
        tmp = self.mailbox / f".{name}.tmp"
        tmp.write_bytes(header + content)
        tmp.rename(self.mailbox / name)  # readers never see half a message
        return "250 Message accepted for delivery"


async def main(host: str, port: int, mailbox: Path) -> None:
    handler = MailboxHandler(mailbox)
    loop = asyncio.get_running_loop()

    def factory() -> Any:
        return SMTP(handler, hostname="embedded-sink", ident="kitakyushu-internships sink")

    server = await loop.create_server(factory, host=host, port=port)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"smtp sink on {host}:{port}, writing to {mailbox}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--mailbox", type=Path, default=Path(".data/mailbox"))
    args = parser.parse_args()
    asyncio.run(main(args.host, args.port, args.mailbox))
