from services.applications.app import ApplicationsSettings, create_app
from shared.serve import serve

settings = ApplicationsSettings()
serve(create_app, settings, settings.http_port)
