"""The model client: ChatOllama or ChatOpenAI, the JSON tool mode, failures, server probes, the fake."""
