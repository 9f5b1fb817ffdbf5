"""The API's machine-readable contract: response models and the OpenAPI 3.1 document.

``models`` describes what each route answers (the request models are the
ones the routes validate with, from chalicelib.events); ``document``
builds the OpenAPI document served at ``GET /openapi.json`` from both.
"""
