"""The splitkey client library: what workers, the settings backend and operators import."""
