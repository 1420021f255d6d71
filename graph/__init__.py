"""The LangGraph state machine of the copilot: state, nodes, routing, checkpointer and the facade."""
