"""The built-in mock provider's models and their prices (USD per million tokens)."""

MOCK_PROVIDER_NAME = "mock"
MOCK_MODELS = {
    # name: ((input, cached input, cache write, output) USD per million tokens, max output tokens)
    "mock/echo": (("1", "0.5", None, "2"), 4096),
    "mock/large": (("3", "0.3", "3.75", "15"), 32768),
}
