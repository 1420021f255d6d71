"""The HTTP API: dependencies, request/response models and one router per resource."""
