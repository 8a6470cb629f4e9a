# lib/route: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/route/route.c lib/route/route.h \
	lib/route/lb.c lib/route/lb.h \
	lib/route/health.c lib/route/health.h \
	lib/route/models.c lib/route/models.h
