# lib/tenant: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/tenant/tenant.c lib/tenant/tenant.h \
	lib/tenant/limiter.c lib/tenant/limiter.h \
	lib/tenant/usage.c lib/tenant/usage.h \
	lib/tenant/catalog.c lib/tenant/catalog.h
