"""What the routes do, without HTTP: queries over the store, calls into the controller, conversions to schemas.

Handlers stay thin (parse, authorise, call one service function); services raise domain errors that the app maps to
HTTP statuses in one place (`odin.api.errors`).
"""
