"""The transport layer: HTTP clients, retry policy, error mapping and stream framing.

Nothing here knows a protocol; the bindings above describe their requests and
parse their events, and lean on these modules for the rest.
"""
