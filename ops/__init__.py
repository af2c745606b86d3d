"""Operations: the fleet CLI, settings, HTTP service, telemetry, embedded NATS."""
