# Placeholder until the routing stage lands (issue 5): no routing targets yet.
def routing_targets():
    return []
