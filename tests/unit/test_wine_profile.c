/* test_wine_profile.c: owns the recognition of Wine's processes
 * (src/wine_profile.c, libwspclose(7) §3.1): wineserver by its executable's
 * name, the loaders of Windows programs, everything else a program; and
 * WSPCLOSE_WINE=on/off overriding the name. */
#include <check.h>
#include <stdlib.h>

#include "wine_profile.h"

static const struct {
	const char *path;
	enum process_role role;
} names[] = {
	{ "/usr/lib/wine/wineserver64", ROLE_WINESERVER },
	{ "/usr/lib/wine/wineserver32", ROLE_WINESERVER },
	{ "/usr/bin/wineserver", ROLE_WINESERVER },
	{ "/opt/wine-staging/bin/wineserver", ROLE_WINESERVER },
	{ "/usr/lib/wine/wine64", ROLE_WINE_CLIENT },
	{ "/usr/lib/wine/wine", ROLE_WINE_CLIENT },
	{ "/usr/lib/wine/wine64-preloader", ROLE_WINE_CLIENT },
	{ "/usr/lib/wine/wine-preloader", ROLE_WINE_CLIENT },
	{ "wine64", ROLE_WINE_CLIENT },
	{ "/usr/bin/winecfg", ROLE_PROGRAM },
	{ "/usr/bin/wine-tools", ROLE_PROGRAM },
	{ "/usr/sbin/nginx", ROLE_PROGRAM },
	{ "/home/me/wine64/server", ROLE_PROGRAM },
};

START_TEST(executable_names_give_the_role)
{
	ck_assert_msg(wine_role_of_executable(names[_i].path, WINE_AUTO) == names[_i].role,
		      "%s: role %d, expected %d", names[_i].path,
		      wine_role_of_executable(names[_i].path, WINE_AUTO), names[_i].role);
}
END_TEST

START_TEST(the_setting_overrides_the_name)
{
	ck_assert_int_eq(wine_role_of_executable("/usr/sbin/nginx", WINE_ON), ROLE_WINESERVER);
	ck_assert_int_eq(wine_role_of_executable("/usr/lib/wine/wine64", WINE_ON), ROLE_WINESERVER);
	ck_assert_int_eq(wine_role_of_executable("/usr/lib/wine/wineserver64", WINE_OFF), ROLE_PROGRAM);
	ck_assert_int_eq(wine_role_of_executable("/usr/lib/wine/wine64", WINE_OFF), ROLE_PROGRAM);
	ck_assert_int_eq(wine_role_of_executable(NULL, WINE_AUTO), ROLE_PROGRAM);
}
END_TEST

/* This test program is no Wine process: it detects itself as a program. */
START_TEST(this_process_is_a_program)
{
	ck_assert_int_eq(wine_profile_detect(WINE_AUTO), ROLE_PROGRAM);
	ck_assert(!wine_profile_in_wineserver());
	ck_assert_int_eq(wine_profile_detect(WINE_ON), ROLE_WINESERVER);
	ck_assert(wine_profile_in_wineserver());
	ck_assert_int_eq(wine_profile_detect(WINE_AUTO), ROLE_PROGRAM);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wine_profile");
	TCase *tc = tcase_create("roles");
	tcase_add_loop_test(tc, executable_names_give_the_role, 0, (int)(sizeof names / sizeof names[0]));
	tcase_add_test(tc, the_setting_overrides_the_name);
	tcase_add_test(tc, this_process_is_a_program);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
