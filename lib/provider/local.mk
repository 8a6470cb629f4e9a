# lib/provider: see lib/README.
lib_libantigw_a_SOURCES += \
	lib/provider/provider.c lib/provider/provider.h \
	lib/provider/type_openai.c \
	lib/provider/type_anthropic.c \
	lib/provider/answer_rules.c lib/provider/answer_rules.h
