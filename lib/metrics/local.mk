# lib/metrics: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/metrics/metrics.c lib/metrics/metrics.h \
	lib/metrics/meter.c lib/metrics/meter.h
