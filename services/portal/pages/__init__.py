"""The portal's pages, one module per role (public, sign-in, coordinator, company, student,
university office)."""

from services.portal.pages import company, coordinator, public, signin, student, university

ROUTERS = [
    public.router,
    signin.router,
    coordinator.router,
    company.router,
    student.router,
    university.router,
]
