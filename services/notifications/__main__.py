from services.notifications.app import NotificationsSettings, create_app
from shared.serve import serve

settings = NotificationsSettings()
serve(create_app, settings, settings.http_port)
