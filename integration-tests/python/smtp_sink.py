"""A real SMTP server (aiosmtpd) that stores every message in a maildir, with X-RcptTo recording
the envelope recipients, and answers some recipients as a troubled relay would:
  fail550...@  -> 550 for good;   defer451...@ -> 451 twice, then accepted.

Usage: smtp_sink.py HOST PORT MAILDIR
"""

import signal
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox


class PolicyMailbox(Mailbox):
    def __init__(self, mail_dir):
        super().__init__(mail_dir)
        self.deferred = {}

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@")[0].lower()
        if local.startswith("fail550"):
            return "550 5.1.1 mailbox unavailable"
        if local.startswith("defer451"):
            tries = self.deferred.get(address, 0)
            self.deferred[address] = tries + 1
            if tries < 2:
                return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"


def main():
    host, port, mail_dir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    controller = Controller(PolicyMailbox(mail_dir), hostname=host, port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
