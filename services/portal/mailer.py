"""The portal's own e-mail: sign-in links and roster invitations, sent straight over SMTP.

A sign-in link is a secret: it goes from the portal to the SMTP server and nowhere else (never
on Kafka, never in a log line).
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib

from services.portal.i18n import N_, translate_in
from services.portal.settings import PortalSettings

log = logging.getLogger(__name__)

SIGN_IN_SUBJECT = N_("Your sign-in link: Kitakyushu x Taipei Tech internship program")
SIGN_IN_BODY = N_(
    "Hello,\n\n"
    "please open this link to sign in to the portal of the Kitakyushu x Taipei Tech "
    "international internship program:\n\n"
    "%(url)s\n\n"
    "The link works once and expires in %(minutes)s minutes. If you did not ask for it, "
    "you can ignore this message: nobody can sign in without the link.\n"
)
INVITATION_SUBJECT = N_("Invitation: Kitakyushu x Taipei Tech internship program")
INVITATION_BODY = N_(
    "Hello %(name)s,\n\n"
    "your university office has registered you for the Kitakyushu x Taipei Tech international "
    "internship program. To take part, sign in with this e-mail address at\n\n"
    "%(url)s\n\n"
    "then complete your profile, browse the internship positions and send your application.\n"
)
SIGNATURE = N_(
    "\n--\nCity of Kitakyushu, Industrial Economy Bureau, "
    "Employment and Industrial HR Policy Division\n"
    "This message was sent automatically; replies to it are not read.\n"
)


class PortalMailer:
    def __init__(self, settings: PortalSettings) -> None:
        self.settings = settings

    async def send(self, to: str, subject: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="kitakyushu-internships.invalid")
        message.set_content(body)
        s = self.settings
        await aiosmtplib.send(
            message,
            hostname=s.smtp_host,
            port=s.smtp_port,
            username=s.smtp_username,
            password=s.smtp_password.get_secret_value() if s.smtp_password else None,
            start_tls=s.smtp_starttls,
            use_tls=s.smtp_ssl,
            timeout=s.smtp_timeout_seconds,
        )

    async def send_sign_in_link(self, to: str, language: str, url: str) -> None:
        body = translate_in(
            language, SIGN_IN_BODY, url=url, minutes=str(self.settings.sign_in_link_minutes)
        )
        await self.send(
            to,
            translate_in(language, SIGN_IN_SUBJECT),
            body + translate_in(language, SIGNATURE),
        )

    async def send_invitation(self, to: str, name: str, language: str, url: str) -> None:
        body = translate_in(language, INVITATION_BODY, name=name, url=url)
        await self.send(
            to,
            translate_in(language, INVITATION_SUBJECT),
            body + translate_in(language, SIGNATURE),
        )
