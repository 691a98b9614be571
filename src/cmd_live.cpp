// attach / detach / status: the live agent (see src/agent.cpp)
