/* fuzz-variant.c: GVariant -> Python -> GVariant.
 *
 * Input: TYPE NUL DATA. TYPE is a GVariant type string when it is a valid,
 * definite one (so seeds read like "a{sv}\0..."); other bytes before the
 * NUL pick a type through a small grammar, so every input has a type. DATA
 * is the serialized value, untrusted: it need not be in normal form.
 *
 * Properties, for every input:
 *
 *   1. gab_variant_to_python() succeeds on the value as loaded (untrusted)
 *      and on its normal form, and both give the same Python value (repr).
 *   2. Converting that Python value back with the same type,
 *      gab_variant_from_python(), leaves no Python exception set, and:
 *      - for a type without `v` (whose boxed values come back inferred), it
 *        succeeds unless the value nests Python containers deeper than the
 *        documented limit (64), which is then the error, and gives exactly the value the documented
 *        Python semantics predict (expected_value() below: a later
 *        duplicate dict key wins, Just (Nothing) of an mmT becomes Nothing):
 *        compared with g_variant_equal(), so bit for bit;
 *      - for a type with `v`, it may fail, but only with
 *        GAB_ERROR_CONVERSION (dict keys that are neither all str nor all
 *        int cannot be inferred, for instance); when it succeeds the result
 *        has the type asked for, converts to the same Python value again,
 *        and a second trip gives the same GVariant (a fixed point).
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#include "fuzz-common.h"

#include <string.h>

/* Python container nesting gab_variant_from_python() accepts (see
 * GAB_VARIANT_MAX_DEPTH in gab-variant.c; the outermost container is level
 * 1, a scalar inside the innermost one is no level). */
#define FROM_PYTHON_MAX_DEPTH 64

/* Grammar nesting for generated types: deep enough for every container in
 * every position, shallow enough to keep inputs meaningful. */
#define GRAMMAR_MAX_DEPTH 6

int
LLVMFuzzerInitialize (int    *argc,
                      char ***argv)
{
  gab_fuzz_init ();
  return 0;
}

/* Type grammar --------------------------------------------------------------- */

static const char basic_types[] = "bynqiuxtdsogh";

typedef struct
{
  const guint8 *p;
  const guint8 *end;
} Reader;

static guint8
next_byte (Reader *r)
{
  return r->p < r->end ? *r->p++ : 0;
}

static void
generate_type (Reader  *r,
               GString *out,
               int      depth)
{
  guint8 b = next_byte (r);
  guint choice = b % 21;
  guint i, n;

  if (depth >= GRAMMAR_MAX_DEPTH && choice >= 13)
    choice = b % 13;

  switch (choice)
    {
    case 13:
      g_string_append_c (out, 'v');
      break;
    case 14:
    case 15:
      g_string_append_c (out, 'a');
      generate_type (r, out, depth + 1);
      break;
    case 16:
      g_string_append_c (out, 'm');
      generate_type (r, out, depth + 1);
      break;
    case 17:
    case 18:
      n = next_byte (r) % 5;    /* () included */
      g_string_append_c (out, '(');
      for (i = 0; i < n; i++)
        generate_type (r, out, depth + 1);
      g_string_append_c (out, ')');
      break;
    case 19:
    case 20:
      /* a{KV} mostly, a bare {KV} sometimes. */
      if (choice == 19 || (b & 0x80) == 0)
        g_string_append_c (out, 'a');
      g_string_append_c (out, '{');
      g_string_append_c (out, basic_types[next_byte (r) % (sizeof basic_types - 1)]);
      generate_type (r, out, depth + 1);
      g_string_append_c (out, '}');
      break;
    default:
      g_string_append_c (out, basic_types[choice]);
      break;
    }
}

/* Containers nested in @type, maybes included. */
static guint
container_depth (const GVariantType *type)
{
  const GVariantType *member;
  guint deepest = 0;

  if (g_variant_type_is_maybe (type) || g_variant_type_is_array (type))
    return 1 + container_depth (g_variant_type_element (type));
  if (!g_variant_type_is_tuple (type) && !g_variant_type_is_dict_entry (type))
    return 0;
  for (member = g_variant_type_first (type); member != NULL;
       member = g_variant_type_next (member))
    deepest = MAX (deepest, container_depth (member));
  return 1 + deepest;
}

/* GLib 2.74 accepts types 128 containers deep, but its own
 * g_variant_get_normal_form() (which this harness calls; the bridge never
 * does) fails an assertion on some of them, e.g. a{106}m{22}i. */
#define GLIB_SAFE_DEPTH 100

static GVariantType *
type_from_input (const guint8 *bytes,
                 gsize         length)
{
  g_autofree char *text = g_strndup ((const char *) bytes, length);
  g_autoptr(GString) generated = NULL;
  Reader r = { bytes, bytes + length };

  if (length > 0 && g_variant_type_string_is_valid (text)
      && g_variant_type_is_definite (G_VARIANT_TYPE (text))
      && container_depth (G_VARIANT_TYPE (text)) <= GLIB_SAFE_DEPTH)
    return g_variant_type_new (text);

  generated = g_string_new (NULL);
  generate_type (&r, generated, 0);
  g_assert (g_variant_type_string_is_valid (generated->str));
  return g_variant_type_new (generated->str);
}

/* Python container nesting of a value of @type, as gab_variant_from_python()
 * counts it: arrays, tuples and dict entries nest, maybes do not, `ay` is
 * bytes, no container, and the entries of an a{KV} are the array's own
 * level. */
static guint
python_depth (const GVariantType *type)
{
  const GVariantType *member;
  guint deepest = 0;

  if (g_variant_type_is_maybe (type))
    return python_depth (g_variant_type_element (type));
  if (g_variant_type_is_array (type))
    {
      const GVariantType *element = g_variant_type_element (type);

      if (g_variant_type_equal (element, G_VARIANT_TYPE_BYTE))
        return 0;
      if (g_variant_type_is_dict_entry (element))
        return 1 + MAX (python_depth (g_variant_type_key (element)),
                        python_depth (g_variant_type_value (element)));
      return 1 + python_depth (element);
    }
  if (g_variant_type_is_tuple (type) || g_variant_type_is_dict_entry (type))
    {
      for (member = g_variant_type_first (type); member != NULL;
           member = g_variant_type_next (member))
        deepest = MAX (deepest, python_depth (member));
      return 1 + deepest;
    }
  return 0;
}

/* The model ------------------------------------------------------------------ */

/* Python dict key equality, for keys of one basic type. */
static gboolean
python_keys_equal (GVariant *a,
                   GVariant *b)
{
  if (g_variant_is_of_type (a, G_VARIANT_TYPE_DOUBLE))
    return g_variant_get_double (a) == g_variant_get_double (b);   /* NaN != NaN, 0.0 == -0.0 */
  return g_variant_equal (a, b);
}

/* What GVariant -> Python -> GVariant with the same type gives for @value
 * (normal form; a type without `v`), by the documented semantics. Returns
 * a new full (not floating) reference. */
static GVariant *
expected_value (GVariant *value)
{
  const GVariantType *type = g_variant_get_type (value);
  gsize n, i;

  switch (g_variant_classify (value))
    {
    case G_VARIANT_CLASS_MAYBE:
      {
        g_autoptr(GVariant) inner = g_variant_get_maybe (value);
        const GVariantType *element = g_variant_type_element (type);
        GVariant *converted;

        GVariant *result;

        if (inner == NULL)
          return g_variant_ref_sink (g_variant_new_maybe (element, NULL));
        converted = expected_value (inner);
        /* Just (Nothing) is None in Python, and None is Nothing. */
        if (g_variant_type_is_maybe (element) && g_variant_n_children (converted) == 0)
          result = g_variant_new_maybe (element, NULL);
        else
          result = g_variant_new_maybe (NULL, converted);
        g_variant_unref (converted);
        return g_variant_ref_sink (result);
      }

    case G_VARIANT_CLASS_ARRAY:
      {
        const GVariantType *element = g_variant_type_element (type);
        g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);

        n = g_variant_n_children (value);
        for (i = 0; i < n; i++)
          {
            GVariant *child = g_variant_get_child_value (value, i);
            GVariant *converted = expected_value (child);
            gboolean replaced = FALSE;

            g_variant_unref (child);
            if (g_variant_type_is_dict_entry (element))
              {
                g_autoptr(GVariant) key = g_variant_get_child_value (converted, 0);
                guint j;

                /* A later duplicate key replaces the value, in the place
                 * of the first one, which keeps its key. */
                for (j = 0; j < children->len && !replaced; j++)
                  {
                    GVariant *earlier = g_ptr_array_index (children, j);
                    g_autoptr(GVariant) earlier_key = g_variant_get_child_value (earlier, 0);
                    g_autoptr(GVariant) new_value = NULL;

                    if (!python_keys_equal (key, earlier_key))
                      continue;
                    new_value = g_variant_get_child_value (converted, 1);
                    g_ptr_array_index (children, j) =
                      g_variant_ref_sink (g_variant_new_dict_entry (earlier_key, new_value));
                    g_variant_unref (earlier);
                    replaced = TRUE;
                  }
              }
            if (replaced)
              g_variant_unref (converted);
            else
              g_ptr_array_add (children, converted);
          }
        return g_variant_ref_sink (g_variant_new_array (element,
                                                        (GVariant **) children->pdata,
                                                        children->len));
      }

    case G_VARIANT_CLASS_TUPLE:
    case G_VARIANT_CLASS_DICT_ENTRY:
      {
        g_autoptr(GPtrArray) children = g_ptr_array_new_with_free_func ((GDestroyNotify) g_variant_unref);

        n = g_variant_n_children (value);
        for (i = 0; i < n; i++)
          {
            g_autoptr(GVariant) child = g_variant_get_child_value (value, i);

            g_ptr_array_add (children, expected_value (child));
          }
        if (g_variant_classify (value) == G_VARIANT_CLASS_DICT_ENTRY)
          return g_variant_ref_sink (g_variant_new_dict_entry (g_ptr_array_index (children, 0),
                                                               g_ptr_array_index (children, 1)));
        return g_variant_ref_sink (g_variant_new_tuple ((GVariant **) children->pdata, n));
      }

    case G_VARIANT_CLASS_VARIANT:
      g_assert_not_reached ();

    default:
      return g_variant_ref (value);
    }
}

/* The target ----------------------------------------------------------------- */

static void
check_error (GError *error)
{
  gab_fuzz_assert_no_exception ("a failed gab_variant_from_python()");
  if (error == NULL)
    gab_fuzz_fail ("gab_variant_from_python() failed without an error");
  if (!g_error_matches (error, GAB_ERROR, GAB_ERROR_CONVERSION))
    gab_fuzz_fail ("gab_variant_from_python() failed with an error of domain %s, "
                   "code %d: %s", g_quark_to_string (error->domain), error->code,
                   error->message);
  if (error->message == NULL || error->message[0] == '\0'
      || !g_utf8_validate (error->message, -1, NULL))
    gab_fuzz_fail ("gab_variant_from_python() gave an empty or invalid message");
}

void
gab_fuzz_one (const uint8_t *data,
              size_t         size)
{
  const guint8 *nul = memchr (data, '\0', size);
  gsize type_length = nul != NULL ? (gsize) (nul - data) : size;
  g_autoptr(GVariantType) type = NULL;
  g_autoptr(GBytes) bytes = NULL;
  g_autoptr(GVariant) loaded = NULL;
  g_autoptr(GVariant) normal = NULL;
  g_autoptr(GVariant) back = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *type_string = NULL;
  g_autofree char *repr_normal = NULL;
  g_autofree char *repr_loaded = NULL;
  PyObject *python, *python_loaded;
  gboolean boxes;

  type = type_from_input (data, type_length);
  type_string = g_variant_type_dup_string (type);
  boxes = strchr (type_string, 'v') != NULL;

  /* A copy of exactly the data's size: reads past it are caught. */
  if (nul != NULL)
    bytes = g_bytes_new (nul + 1, size - type_length - 1);
  else
    bytes = g_bytes_new (NULL, 0);
  loaded = g_variant_ref_sink (g_variant_new_from_bytes (type, bytes, FALSE));
  normal = g_variant_get_normal_form (loaded);

  /* 1. To Python, untrusted and normal form alike. */
  python_loaded = gab_variant_to_python (loaded);
  if (python_loaded == NULL)
    gab_fuzz_fail ("gab_variant_to_python() failed on a value of type '%s'",
                   type_string);
  python = gab_variant_to_python (normal);
  if (python == NULL)
    gab_fuzz_fail ("gab_variant_to_python() failed on a normal value of type '%s'",
                   type_string);
  repr_loaded = gab_fuzz_repr (python_loaded);
  repr_normal = gab_fuzz_repr (python);
  Py_DECREF (python_loaded);
  if (strcmp (repr_loaded, repr_normal) != 0)
    gab_fuzz_fail ("type '%s': the loaded value gives %s, its normal form %s",
                   type_string, repr_loaded, repr_normal);

  /* 2. Back, with the same type. */
  back = gab_variant_from_python (python, type, &error);
  gab_fuzz_assert_no_exception ("gab_variant_from_python()");
  if (back == NULL)
    {
      check_error (error);
      /* Without `v`, only the documented depth limit may refuse it. */
      if (!boxes && (python_depth (type) <= FROM_PYTHON_MAX_DEPTH
                     || strstr (error->message, "nested deeper than") == NULL))
        gab_fuzz_fail ("type '%s': %s does not convert back: %s",
                       type_string, repr_normal, error->message);
      Py_DECREF (python);
      return;
    }
  if (error != NULL)
    gab_fuzz_fail ("gab_variant_from_python() succeeded and set an error");
  if (g_variant_is_floating (back))
    gab_fuzz_fail ("gab_variant_from_python() returned a floating reference");
  if (!g_variant_is_of_type (back, type) || !g_variant_type_equal (g_variant_get_type (back), type))
    gab_fuzz_fail ("type '%s': the value came back as '%s'", type_string,
                   g_variant_get_type_string (back));

  if (!boxes)
    {
      g_autoptr(GVariant) expected = expected_value (normal);

      if (!g_variant_equal (back, expected))
        {
          g_autofree char *got = g_variant_print (back, TRUE);
          g_autofree char *want = g_variant_print (expected, TRUE);

          gab_fuzz_fail ("type '%s': %s came back as %s, expected %s",
                         type_string, repr_normal, got, want);
        }
    }
  else
    {
      PyObject *again = gab_variant_to_python (back);
      g_autofree char *repr_again = NULL;
      g_autoptr(GVariant) back_again = NULL;

      if (again == NULL)
        gab_fuzz_fail ("gab_variant_to_python() failed on a converted value");
      repr_again = gab_fuzz_repr (again);
      if (strcmp (repr_again, repr_normal) != 0)
        gab_fuzz_fail ("type '%s': %s came back as %s", type_string,
                       repr_normal, repr_again);
      back_again = gab_variant_from_python (again, type, &error);
      if (back_again == NULL)
        gab_fuzz_fail ("type '%s': %s converted once but not twice: %s",
                       type_string, repr_again, error->message);
      if (!g_variant_equal (back, back_again))
        gab_fuzz_fail ("type '%s': a second round trip of %s changed the value",
                       type_string, repr_again);
      Py_DECREF (again);
    }

  Py_DECREF (python);
  gab_fuzz_assert_no_exception ("the round trip");
}
