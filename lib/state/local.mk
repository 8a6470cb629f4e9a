# lib/state: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/state/store.c lib/state/store.h \
	lib/state/shm.c lib/state/shm.h \
	lib/state/ring.c lib/state/ring.h
lib_libantigw_a_SOURCES += lib/state/procs.c lib/state/procs.h
