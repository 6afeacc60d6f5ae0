/* Every function of PKCS#11 2.40's CK_FUNCTION_LIST, once: the parser takes the names
 * from it and fault.c makes every wrapper and the function list from it.
 *
 * F(name, kind, declaration, call, before, after)
 *   kind    how the generic wrapper treats it: S (its first parameter is the session
 *           hSession), T (it names a slot whose token it needs), N (neither), or
 *           CUSTOM (fault.c writes it by hand: initialisation, slots, sessions).
 *   call    the arguments as the real module is called with them: a wrapper first
 *           replaces hSession and object handles in its parameters by the real ones.
 *   before  object handles given to the module (IN_OBJ, IN_KEY, ...), translated when
 *           the plan has objects:stale; empty otherwise.
 *   after   object handles the module hands out (OUT_OBJ, OUT_FOUND, ...), translated
 *           after a call that answered CKR_OK. */
#ifndef HSMTLS_FAULT_FUNCTIONS_H
#define HSMTLS_FAULT_FUNCTIONS_H

#define HSMTLS_FAULT_FUNCTIONS(F)                                                                   \
    F(C_Initialize, CUSTOM, (CK_VOID_PTR pInitArgs), (pInitArgs), , )                               \
    F(C_Finalize, CUSTOM, (CK_VOID_PTR pReserved), (pReserved), , )                                 \
    F(C_GetInfo, N, (CK_INFO_PTR pInfo), (pInfo), , )                                               \
    F(C_GetFunctionList, CUSTOM, (CK_FUNCTION_LIST_PTR_PTR ppFunctionList), (ppFunctionList), , )    \
    F(C_GetSlotList, CUSTOM, (CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount), \
      (tokenPresent, pSlotList, pulCount), , )                                                      \
    F(C_GetSlotInfo, CUSTOM, (CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo), (slotID, pInfo), , )       \
    F(C_GetTokenInfo, T, (CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo), (slotID, pInfo), , )          \
    F(C_GetMechanismList, T, (CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount), \
      (slotID, pMechanismList, pulCount), , )                                                       \
    F(C_GetMechanismInfo, T, (CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo), \
      (slotID, type, pInfo), , )                                                                    \
    F(C_InitToken, T, (CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel), \
      (slotID, pPin, ulPinLen, pLabel), , )                                                         \
    F(C_InitPIN, S, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen),           \
      (hSession, pPin, ulPinLen), , )                                                               \
    F(C_SetPIN, S, (CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,          \
                    CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen),                                    \
      (hSession, pOldPin, ulOldLen, pNewPin, ulNewLen), , )                                         \
    F(C_OpenSession, CUSTOM, (CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, \
                              CK_SESSION_HANDLE_PTR phSession),                                     \
      (slotID, flags, pApplication, Notify, phSession), , )                                         \
    F(C_CloseSession, CUSTOM, (CK_SESSION_HANDLE hSession), (hSession), , )                          \
    F(C_CloseAllSessions, CUSTOM, (CK_SLOT_ID slotID), (slotID), , )                                 \
    F(C_GetSessionInfo, S, (CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo), (hSession, pInfo), , ) \
    F(C_GetOperationState, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,              \
                               CK_ULONG_PTR pulOperationStateLen),                                  \
      (hSession, pOperationState, pulOperationStateLen), , )                                        \
    F(C_SetOperationState, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState,              \
                               CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey,       \
                               CK_OBJECT_HANDLE hAuthenticationKey),                                \
      (hSession, pOperationState, ulOperationStateLen, hEncryptionKey, hAuthenticationKey),         \
      IN_KEY(hEncryptionKey) IN_KEY(hAuthenticationKey), )                                          \
    F(C_Login, S, (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen), \
      (hSession, userType, pPin, ulPinLen), , )                                                     \
    F(C_Logout, S, (CK_SESSION_HANDLE hSession), (hSession), , )                                     \
    F(C_CreateObject, S, (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,   \
                          CK_OBJECT_HANDLE_PTR phObject),                                           \
      (hSession, pTemplate, ulCount, phObject), , OUT_OBJ(phObject))                                \
    F(C_CopyObject, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, \
                        CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject),                        \
      (hSession, hObject, pTemplate, ulCount, phNewObject), IN_OBJ(hObject), OUT_OBJ(phNewObject))  \
    F(C_DestroyObject, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject), (hSession, hObject), \
      IN_DESTROYED(hObject), FORGET_OBJ(hObject))                                                   \
    F(C_GetObjectSize, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize), \
      (hSession, hObject, pulSize), IN_OBJ(hObject), )                                              \
    F(C_GetAttributeValue, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,                 \
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),                       \
      (hSession, hObject, pTemplate, ulCount), IN_OBJ(hObject), )                                   \
    F(C_SetAttributeValue, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,                 \
                               CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount),                       \
      (hSession, hObject, pTemplate, ulCount), IN_OBJ(hObject), )                                   \
    F(C_FindObjectsInit, S, (CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount), \
      (hSession, pTemplate, ulCount), , )                                                           \
    F(C_FindObjects, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, \
                         CK_ULONG_PTR pulObjectCount),                                              \
      (hSession, phObject, ulMaxObjectCount, pulObjectCount), , OUT_FOUND(phObject, pulObjectCount)) \
    F(C_FindObjectsFinal, S, (CK_SESSION_HANDLE hSession), (hSession), , )                           \
    F(C_EncryptInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), IN_KEY(hKey), )                                                 \
    F(C_Encrypt, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,              \
                     CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen),                 \
      (hSession, pData, ulDataLen, pEncryptedData, pulEncryptedDataLen), , )                        \
    F(C_EncryptUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,        \
                           CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen),           \
      (hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen), , )                        \
    F(C_EncryptFinal, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart,                \
                          CK_ULONG_PTR pulLastEncryptedPartLen),                                    \
      (hSession, pLastEncryptedPart, pulLastEncryptedPartLen), , )                                  \
    F(C_DecryptInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), IN_KEY(hKey), )                                                 \
    F(C_Decrypt, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, \
                     CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen),                                   \
      (hSession, pEncryptedData, ulEncryptedDataLen, pData, pulDataLen), , )                        \
    F(C_DecryptUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,                   \
                           CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen), \
      (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen), , )                        \
    F(C_DecryptFinal, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen), \
      (hSession, pLastPart, pulLastPartLen), , )                                                    \
    F(C_DigestInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism), (hSession, pMechanism), , ) \
    F(C_Digest, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest, \
                    CK_ULONG_PTR pulDigestLen),                                                     \
      (hSession, pData, ulDataLen, pDigest, pulDigestLen), , )                                      \
    F(C_DigestUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),        \
      (hSession, pPart, ulPartLen), , )                                                             \
    F(C_DigestKey, S, (CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey), (hSession, hKey), IN_KEY(hKey), ) \
    F(C_DigestFinal, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen), \
      (hSession, pDigest, pulDigestLen), , )                                                        \
    F(C_SignInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), IN_KEY(hKey), )                                                 \
    F(C_Sign, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, \
                  CK_ULONG_PTR pulSignatureLen),                                                    \
      (hSession, pData, ulDataLen, pSignature, pulSignatureLen), , )                                \
    F(C_SignUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),          \
      (hSession, pPart, ulPartLen), , )                                                             \
    F(C_SignFinal, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen), \
      (hSession, pSignature, pulSignatureLen), , )                                                  \
    F(C_SignRecoverInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), IN_KEY(hKey), )                                                 \
    F(C_SignRecover, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen,          \
                         CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen),                     \
      (hSession, pData, ulDataLen, pSignature, pulSignatureLen), , )                                \
    F(C_VerifyInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), IN_KEY(hKey), )                                                 \
    F(C_Verify, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, \
                    CK_ULONG ulSignatureLen),                                                       \
      (hSession, pData, ulDataLen, pSignature, ulSignatureLen), , )                                 \
    F(C_VerifyUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen),        \
      (hSession, pPart, ulPartLen), , )                                                             \
    F(C_VerifyFinal, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen), \
      (hSession, pSignature, ulSignatureLen), , )                                                   \
    F(C_VerifyRecoverInit, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey), \
      (hSession, pMechanism, hKey), IN_KEY(hKey), )                                                 \
    F(C_VerifyRecover, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, \
                           CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen),                             \
      (hSession, pSignature, ulSignatureLen, pData, pulDataLen), , )                                \
    F(C_DigestEncryptUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,  \
                                 CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen),     \
      (hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen), , )                        \
    F(C_DecryptDigestUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,             \
                                 CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen), \
      (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen), , )                        \
    F(C_SignEncryptUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,    \
                               CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen),       \
      (hSession, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen), , )                        \
    F(C_DecryptVerifyUpdate, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart,             \
                                 CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen), \
      (hSession, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen), , )                        \
    F(C_GenerateKey, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate, \
                         CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey),                             \
      (hSession, pMechanism, pTemplate, ulCount, phKey), , OUT_OBJ(phKey))                          \
    F(C_GenerateKeyPair, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,                \
                             CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount, \
                             CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount, \
                             CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey),  \
      (hSession, pMechanism, pPublicKeyTemplate, ulPublicKeyAttributeCount, pPrivateKeyTemplate,    \
       ulPrivateKeyAttributeCount, phPublicKey, phPrivateKey), , OUT_OBJ(phPublicKey) OUT_OBJ(phPrivateKey)) \
    F(C_WrapKey, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, \
                     CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen), \
      (hSession, pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen),                    \
      IN_HANDLE(hWrappingKey, CKR_WRAPPING_KEY_HANDLE_INVALID) IN_KEY(hKey), )                      \
    F(C_UnwrapKey, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, \
                       CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, \
                       CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey),                      \
      (hSession, pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen, pTemplate, ulAttributeCount, phKey), \
      IN_HANDLE(hUnwrappingKey, CKR_UNWRAPPING_KEY_HANDLE_INVALID), OUT_OBJ(phKey))                 \
    F(C_DeriveKey, S, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, \
                       CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey), \
      (hSession, pMechanism, hBaseKey, pTemplate, ulAttributeCount, phKey), IN_KEY(hBaseKey), OUT_OBJ(phKey)) \
    F(C_SeedRandom, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen),          \
      (hSession, pSeed, ulSeedLen), , )                                                             \
    F(C_GenerateRandom, S, (CK_SESSION_HANDLE hSession, CK_BYTE_PTR RandomData, CK_ULONG ulRandomLen), \
      (hSession, RandomData, ulRandomLen), , )                                                      \
    F(C_GetFunctionStatus, S, (CK_SESSION_HANDLE hSession), (hSession), , )                          \
    F(C_CancelFunction, S, (CK_SESSION_HANDLE hSession), (hSession), , )                             \
    F(C_WaitForSlotEvent, N, (CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved),          \
      (flags, pSlot, pReserved), , )

/* FAULT_FN_C_Sign ...: each function's index in the table. */
#define HSMTLS_FAULT_ENUM(name, kind, decl, call, before, after) FAULT_FN_##name,
enum { HSMTLS_FAULT_FUNCTIONS(HSMTLS_FAULT_ENUM) FAULT_FN_COUNT };
#undef HSMTLS_FAULT_ENUM

#endif
