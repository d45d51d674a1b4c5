"""Operations: systemd integration, health, Prometheus metrics and the HTTP endpoints."""
