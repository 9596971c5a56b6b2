"""The portal's configuration (environment variables; defaults work for `make run`)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import CommonSettings


class PortalSettings(CommonSettings):
    http_port: int = Field(default=8000, alias="PORTAL_HTTP_PORT")
    database: str = Field(default="portal", alias="PORTAL_DATABASE")
    # Where people reach the portal; links in e-mails start with it.
    public_base_url: str = "http://127.0.0.1:8000"
    applications_url: str = "http://127.0.0.1:8001"
    matching_url: str = "http://127.0.0.1:8002"
    notifications_url: str = "http://127.0.0.1:8003"
    api_timeout_seconds: float = Field(default=15, gt=0)
    # The bearer tokens the portal mints for the signed-in person live this long.
    api_token_seconds: int = Field(default=300, ge=60, le=3600)

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout_seconds: float = 15
    mail_from: str = "Kitakyushu Internship Program <internships@kitakyushu-internships.invalid>"

    # Comma-separated; an address in one of these domains (or a subdomain) may register as a
    # student. Empty: any address may.
    student_email_domains: str = "ntut.edu.tw"
    sign_in_link_minutes: int = Field(default=15, ge=1, le=60)
    session_idle_minutes: int = Field(default=60, ge=5)
    session_absolute_hours: int = Field(default=12, ge=1)
    sign_in_limit_per_address: int = Field(default=5, ge=1)
    sign_in_limit_per_client: int = Field(default=30, ge=1)
    sign_in_limit_window_minutes: int = Field(default=15, ge=1)
    # auto: Secure cookies when PUBLIC_BASE_URL or the request is https; true/false forces it.
    cookie_secure: str = Field(default="auto", pattern="^(auto|true|false)$")
    # Strict-Transport-Security max-age on answers served over https (decided as for cookies
    # in auto mode); 0 sends none.
    hsts_seconds: int = Field(default=365 * 24 * 3600, ge=0)
    page_size: int = Field(default=20, ge=5, le=200)
    # A roster's invitations are mailed in the background at most this many a second, so that
    # 2,000 of them do not flood the relay (or get the sender throttled as a spammer).
    roster_invitations_per_second: float = Field(default=5, gt=0, le=100)

    @property
    def student_domains(self) -> tuple[str, ...]:
        return tuple(
            d.strip().lower().lstrip("@")
            for d in self.student_email_domains.split(",")
            if d.strip()
        )
