# lib/core: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/core/core.c lib/core/core.h \
	lib/core/json.c lib/core/json.h \
	lib/core/sse.c lib/core/sse.h \
	lib/core/crypto.c lib/core/crypto.h \
	lib/core/config.c lib/core/config.h \
	lib/core/cli.c lib/core/cli.h \
	lib/core/eventstream.c lib/core/eventstream.h
