-- Add to prosody.cfg.lua (after your VirtualHost "example.com" section).
-- The component name and secret must match [xmpp] component and secret in
-- stox.toml; Prosody's component port (5347 by default) must be reachable
-- from stox only (keep it on loopback or a private network).
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

Component "sip.example.com"
    component_secret = "change-me"
