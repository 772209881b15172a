module github.com/stox-gw/stox

go 1.26

require (
	github.com/BurntSushi/toml v1.4.0
	github.com/beevik/etree v1.8.1
	github.com/emiago/sipgo v1.7.2
	github.com/pion/sdp/v3 v3.0.20
	golang.org/x/sys v0.29.0
	gosrc.io/xmpp v0.5.1
)

require (
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/gobwas/pool v0.2.1 // indirect
	github.com/gobwas/ws v1.3.2 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/icholy/digest v1.2.0 // indirect
	github.com/pion/randutil v0.1.0 // indirect
	golang.org/x/sync v0.16.0 // indirect
)
