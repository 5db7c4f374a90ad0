"""The operator's faces over the telemetry: the read model, ``top``, ``diagnose``, MCP."""
