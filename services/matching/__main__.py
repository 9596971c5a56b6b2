from services.matching.app import MatchingSettings, create_app
from shared.serve import serve

settings = MatchingSettings()
serve(create_app, settings, settings.http_port)
