/* RFC 7512 PKCS#11 URIs over p11-kit's URI support. p11-kit parses, matches and
 * formats; this layer adds what it lacks: errors that quote the URI (pin-value
 * masked) and name the bad part, refusal of unknown attributes, and helpers. */
#ifndef HSMTLS_P11_URI_H
#define HSMTLS_P11_URI_H

#include <stddef.h>
#include <p11-kit/pkcs11.h>
#include <p11-kit/uri.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hsmtls_p11_uri hsmtls_p11_uri;

/* Parses `text`; NULL with a message on error, e.g.
 *   invalid PKCS#11 URI "pkcs11:token=a;objct=b": unknown attribute "objct"
 *   invalid PKCS#11 URI "pkcs11:object=%zz": bad percent-encoding in "object"
 *   invalid PKCS#11 URI "pkcs11:token=x?pin-value=***": ...
 * Accepts every path attribute of RFC 7512 (token, manufacturer, serial, model,
 * library-manufacturer, library-description, library-version, slot-id,
 * slot-description, slot-manufacturer, object, id, type) and the query attributes
 * pin-value, pin-source, module-name, module-path. `type` must be one of public,
 * private, cert, secret-key, data; slot-id a decimal number; library-version M or M.N. */
hsmtls_p11_uri *hsmtls_p11_uri_parse(const char *text);
void hsmtls_p11_uri_free(hsmtls_p11_uri *uri);

/* The URI text as hsmtls_p11_mask_text() shows it (pin-value "***", control characters
 * escaped): safe to print or log. */
const char *hsmtls_p11_uri_masked(const hsmtls_p11_uri *uri);

/* Any text that a message quotes (a URI, a path, command-line input, OpenSSL's error
 * data, or a whole message), made safe to print: the value after any name= whose name
 * contains "pin" (percent-decoded, any case; not pin-source, which names a file) becomes
 * "***" up to the next "&name=" or the end, a segment like "?pin1234" becomes "***", and
 * control characters (below 0x20, 0x7f) and bytes that are not valid UTF-8 become \xNN.
 * Idempotent. libhsmtls masks its messages with the same code. malloc'd (free()); NULL
 * for NULL or when out of memory. */
char *hsmtls_p11_mask_text(const char *text);

/* The URI text without pin-value (other attributes as written), malloc'd: what may be
 * stored in a file. */
char *hsmtls_p11_uri_without_pin(const hsmtls_p11_uri *uri);

/* The p11-kit object underneath, for matching (p11_kit_uri_match_*). */
P11KitUri *hsmtls_p11_uri_p11kit(const hsmtls_p11_uri *uri);

/* Query attributes; NULL when absent. */
const char *hsmtls_p11_uri_pin_value(const hsmtls_p11_uri *uri);
const char *hsmtls_p11_uri_pin_source(const hsmtls_p11_uri *uri);
const char *hsmtls_p11_uri_module_name(const hsmtls_p11_uri *uri);
const char *hsmtls_p11_uri_module_path(const hsmtls_p11_uri *uri);

/* Path attributes about objects. `label`/`id` return NULL when absent; id_len gets
 * the byte length. class returns (CK_OBJECT_CLASS)-1 when there is no type=. */
const char *hsmtls_p11_uri_object_label(const hsmtls_p11_uri *uri);
const unsigned char *hsmtls_p11_uri_object_id(const hsmtls_p11_uri *uri, size_t *id_len);
CK_OBJECT_CLASS hsmtls_p11_uri_object_class(const hsmtls_p11_uri *uri);
/* slot-id: 1 and *slot when present, 0 when absent. */
int hsmtls_p11_uri_slot_id(const hsmtls_p11_uri *uri, CK_SLOT_ID *slot);

/* True when the URI names anything about a token, slot, library or module path/name
 * (i.e. it is more than object attributes). */
int hsmtls_p11_uri_has_token_part(const hsmtls_p11_uri *uri);

/* Matching: 1 match, 0 no match. Attributes absent from the URI match anything. */
int hsmtls_p11_uri_match_module(const hsmtls_p11_uri *uri, CK_INFO *info);
int hsmtls_p11_uri_match_slot(const hsmtls_p11_uri *uri, CK_SLOT_ID slot, CK_SLOT_INFO *info);
int hsmtls_p11_uri_match_token(const hsmtls_p11_uri *uri, CK_TOKEN_INFO *info);
/* Object match on class, label and id given as plain values (NULL/0 for absent). */
int hsmtls_p11_uri_match_object(const hsmtls_p11_uri *uri, CK_OBJECT_CLASS cls,
                                const char *label, const unsigned char *id, size_t id_len);

/* Formats an object's URI: token (label, manufacturer, model, serial) and the
 * object's label, id and type, percent-encoded as RFC 7512 says. Returns a malloc'd
 * string (free()), NULL on error. Any of label/id may be NULL/0. cls (CK_OBJECT_CLASS)-1
 * omits type=. Pasted back into hsmtls_p11_uri_parse it finds the same object. */
char *hsmtls_p11_uri_format_object(const CK_TOKEN_INFO *token, const char *label,
                                   const unsigned char *id, size_t id_len,
                                   CK_OBJECT_CLASS cls);
/* Formats a token's URI (token, manufacturer, model, serial). */
char *hsmtls_p11_uri_format_token(const CK_TOKEN_INFO *token);

/* Percent-encoding both ways (RFC 7512 / RFC 3986): encode escapes every byte outside
 * the unreserved set and the path-safe set of RFC 7512 ("pchar" less ';'), so a
 * label with ';', '?', '%', '/', ' ' or UTF-8 survives; decode fails (-1) on a '%'
 * not followed by two hex digits. Both return malloc'd strings; decode returns the
 * byte length in *out_len (the result is also NUL-terminated). */
char *hsmtls_p11_uri_encode(const unsigned char *bytes, size_t len);
unsigned char *hsmtls_p11_uri_decode(const char *text, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
