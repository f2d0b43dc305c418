"""Local fakes of the outside services (Gemini, Stripe) that tests drive the real SDKs against."""
