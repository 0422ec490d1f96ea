"""pausable: pause, resume, cancel and watch long multi-step Celery jobs over gRPC."""
