# lib/net: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/net/fcgi_io.c lib/net/fcgi_io.h \
	lib/net/fcgi_server.c lib/net/fcgi_server.h \
	lib/net/upstream.c lib/net/upstream.h \
	lib/net/relay.c lib/net/relay.h
