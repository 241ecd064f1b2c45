// usernet_seal native addon: AES-256-GCM seal/open of encrypted-overlay
// frames in place in the FramePool, in batches, with OpenSSL EVP contexts
// created once per key (not once per frame, as node:crypto's
// createCipheriv does).
//
// Only the crypto and the header bytes are here. Key selection, sequence
// counters, replay windows and every drop decision stay in TypeScript
// (src/overlay/seal.ts); the contract (argument meanings, errors) is
// written down in src/overlay/seal-native.ts. In short:
//   bindPool(buffer, offsets, lengths, capacity, slotSize, largeBase, largeSlotSize, handles)
//   bindScratch(handles: Uint32Array, keys: Uint32Array, results: Uint8Array)
//   addKey(key32) -> slot,  dropKey(slot),  keyCount() -> live keys
//   sealBatch(count, slot, keyId, vni, sender, firstSeq) -> sealed
//   openBatch(count) -> opened            (results[i] = 1 opened, 0 bad tag)
//   unopen(h, slot)                       (undo one open: ciphertext back)
//
// Wire format (src/overlay/seal.ts): 24-byte header [flags 0x0A, 0, 0, 0,
// VNI(3), 0, key id(4), sender(4), seq(8)] before the ciphertext, 16-byte
// tag after it; nonce = header bytes 12..23, AAD = header bytes 0..23.
//
// OpenSSL: the headers are Node's bundled ones (node-gyp puts Node's
// include dir, which has openssl/, first on the include path); the symbols
// come from the node binary itself, which exports them, so nothing is
// linked (no -lcrypto). A Node built with a shared OpenSSL resolves them
// from the libcrypto it loaded.
//
// Hot path rules: sealBatch/openBatch allocate nothing and create no JS
// objects; pool arrays and scratch arrays are raw pointers captured once
// (references keep the backing stores alive).

#include <napi.h>
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr uint32_t kHeaderLen = 24;
constexpr uint32_t kTagLen = 16;
constexpr uint32_t kKeyLen = 32;
constexpr uint8_t kFlagsEncrypted = 0x0a;

struct Key {
  EVP_CIPHER_CTX* enc = nullptr;
  EVP_CIPHER_CTX* dec = nullptr;
};

inline void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

class Seal : public Napi::Addon<Seal> {
 public:
  Seal(Napi::Env env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceMethod("bindPool", &Seal::BindPool),
                             InstanceMethod("bindScratch", &Seal::BindScratch),
                             InstanceMethod("addKey", &Seal::AddKey),
                             InstanceMethod("dropKey", &Seal::DropKey),
                             InstanceMethod("keyCount", &Seal::KeyCount),
                             InstanceMethod("sealBatch", &Seal::SealBatch),
                             InstanceMethod("openBatch", &Seal::OpenBatch),
                             InstanceMethod("unopen", &Seal::Unopen),
                         });
  }

  ~Seal() {
    for (Key& k : keys_) Free(k);
  }

 private:
  // ---- the pool (raw pointers; the references keep them alive)
  Napi::Reference<Napi::ArrayBuffer> bufferRef_;
  Napi::Reference<Napi::Uint32Array> offsetsRef_, lengthsRef_;
  uint8_t* base_ = nullptr;
  size_t byteLength_ = 0;
  uint32_t* offsets_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint32_t capacity_ = 0, slotSize_ = 0, largeBase_ = 0, largeSlotSize_ = 0, handles_ = 0;

  // ---- scratch arrays shared with JS: one entry per frame of a batch
  Napi::Reference<Napi::Uint32Array> sHandlesRef_, sKeysRef_;
  Napi::Reference<Napi::Uint8Array> sResultsRef_;
  uint32_t* sHandles_ = nullptr;
  uint32_t* sKeys_ = nullptr;
  uint8_t* sResults_ = nullptr;
  uint32_t scratchLen_ = 0;

  // ---- keys: slot → contexts (null when free); free slots reused
  std::vector<Key> keys_;
  std::vector<uint32_t> freeSlots_;
  uint32_t live_ = 0;

  static void Free(Key& k) {
    if (k.enc != nullptr) EVP_CIPHER_CTX_free(k.enc);
    if (k.dec != nullptr) EVP_CIPHER_CTX_free(k.dec);
    k.enc = k.dec = nullptr;
  }

  uint32_t SlotStart(uint32_t h) const {
    return h < capacity_ ? h * slotSize_ : largeBase_ + (h - capacity_) * largeSlotSize_;
  }
  uint32_t SlotEnd(uint32_t h) const { return SlotStart(h) + (h < capacity_ ? slotSize_ : largeSlotSize_); }

  void RequireBound(Napi::Env env) const {
    if (base_ == nullptr) throw Napi::Error::New(env, "usernet_seal: bindPool() has not been called");
    if (sHandles_ == nullptr) throw Napi::Error::New(env, "usernet_seal: bindScratch() has not been called");
  }

  Key& KeyAt(Napi::Env env, uint32_t slot) {
    if (slot >= keys_.size() || keys_[slot].enc == nullptr) throw Napi::RangeError::New(env, "usernet_seal: no key in slot " + std::to_string(slot));
    return keys_[slot];
  }

  uint32_t Count(const Napi::CallbackInfo& info) const {
    uint32_t n = info[0].As<Napi::Number>().Uint32Value();
    if (n > scratchLen_) throw Napi::RangeError::New(info.Env(), "usernet_seal: count larger than the scratch arrays");
    return n;
  }

  uint32_t Handle(Napi::Env env, uint32_t h) const {
    if (h >= handles_) throw Napi::RangeError::New(env, "usernet_seal: frame handle " + std::to_string(h) + " out of range");
    return h;
  }

  // bindPool(buffer, offsets, lengths, capacity, slotSize, largeBase, largeSlotSize, handles)
  void BindPool(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
    Napi::Uint32Array offsets = info[1].As<Napi::Uint32Array>();
    Napi::Uint32Array lengths = info[2].As<Napi::Uint32Array>();
    uint32_t capacity = info[3].As<Napi::Number>().Uint32Value();
    uint32_t slotSize = info[4].As<Napi::Number>().Uint32Value();
    uint32_t largeBase = info[5].As<Napi::Number>().Uint32Value();
    uint32_t largeSlotSize = info[6].As<Napi::Number>().Uint32Value();
    uint32_t handles = info[7].As<Napi::Number>().Uint32Value();
    if (offsets.ElementLength() < handles || lengths.ElementLength() < handles)
      throw Napi::RangeError::New(env, "usernet_seal: offsets/lengths shorter than the handle count");
    uint64_t end = handles > capacity ? static_cast<uint64_t>(largeBase) + static_cast<uint64_t>(handles - capacity) * largeSlotSize
                                      : static_cast<uint64_t>(capacity) * slotSize;
    if (static_cast<uint64_t>(capacity) * slotSize > largeBase || end > buffer.ByteLength())
      throw Napi::RangeError::New(env, "usernet_seal: pool geometry does not fit the buffer");
    bufferRef_ = Napi::Persistent(buffer);
    offsetsRef_ = Napi::Persistent(offsets);
    lengthsRef_ = Napi::Persistent(lengths);
    base_ = static_cast<uint8_t*>(buffer.Data());
    byteLength_ = buffer.ByteLength();
    offsets_ = offsets.Data();
    lengths_ = lengths.Data();
    capacity_ = capacity;
    slotSize_ = slotSize;
    largeBase_ = largeBase;
    largeSlotSize_ = largeSlotSize;
    handles_ = handles;
  }

  // bindScratch(handles: Uint32Array, keys: Uint32Array, results: Uint8Array)
  void BindScratch(const Napi::CallbackInfo& info) {
    Napi::Uint32Array h = info[0].As<Napi::Uint32Array>();
    Napi::Uint32Array k = info[1].As<Napi::Uint32Array>();
    Napi::Uint8Array r = info[2].As<Napi::Uint8Array>();
    size_t n = h.ElementLength();
    if (k.ElementLength() < n || r.ElementLength() < n) throw Napi::RangeError::New(info.Env(), "usernet_seal: scratch arrays of unequal length");
    sHandlesRef_ = Napi::Persistent(h);
    sKeysRef_ = Napi::Persistent(k);
    sResultsRef_ = Napi::Persistent(r);
    sHandles_ = h.Data();
    sKeys_ = k.Data();
    sResults_ = r.Data();
    scratchLen_ = static_cast<uint32_t>(n);
  }

  // addKey(key: Uint8Array of 32 bytes) -> slot
  Napi::Value AddKey(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Uint8Array key = info[0].As<Napi::Uint8Array>();
    if (key.ElementLength() != kKeyLen) throw Napi::RangeError::New(env, "usernet_seal: a key is 32 bytes");
    Key k;
    k.enc = EVP_CIPHER_CTX_new();
    k.dec = EVP_CIPHER_CTX_new();
    bool ok = k.enc != nullptr && k.dec != nullptr &&
              EVP_EncryptInit_ex(k.enc, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(k.enc, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_EncryptInit_ex(k.enc, nullptr, nullptr, key.Data(), nullptr) == 1 &&
              EVP_DecryptInit_ex(k.dec, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(k.dec, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_DecryptInit_ex(k.dec, nullptr, nullptr, key.Data(), nullptr) == 1;
    if (!ok) {
      Free(k);
      throw Napi::Error::New(env, "usernet_seal: OpenSSL could not set up an AES-256-GCM context");
    }
    uint32_t slot;
    if (!freeSlots_.empty()) {
      slot = freeSlots_.back();
      freeSlots_.pop_back();
      keys_[slot] = k;
    } else {
      slot = static_cast<uint32_t>(keys_.size());
      keys_.push_back(k);
    }
    live_++;
    return Napi::Number::New(env, slot);
  }

  // dropKey(slot): frees its contexts (a slot not in use is ignored)
  void DropKey(const Napi::CallbackInfo& info) {
    uint32_t slot = info[0].As<Napi::Number>().Uint32Value();
    if (slot >= keys_.size() || keys_[slot].enc == nullptr) return;
    Free(keys_[slot]);
    freeSlots_.push_back(slot);
    live_--;
  }

  Napi::Value KeyCount(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), live_); }

  // sealBatch(count, slot, keyId, vni, sender, firstSeq) -> sealed
  // Frame sHandles_[i] (the inner Ethernet frame) gets sequence firstSeq + i.
  Napi::Value SealBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireBound(env);
    uint32_t n = Count(info);
    Key& key = KeyAt(env, info[1].As<Napi::Number>().Uint32Value());
    uint32_t keyId = info[2].As<Napi::Number>().Uint32Value();
    uint32_t vni = info[3].As<Napi::Number>().Uint32Value();
    uint32_t sender = info[4].As<Napi::Number>().Uint32Value();
    double first = info[5].As<Napi::Number>().DoubleValue();
    if (!(first >= 1 && first + n - 1 <= 9007199254740991.0)) throw Napi::RangeError::New(env, "usernet_seal: sequence out of range");
    uint64_t seq = static_cast<uint64_t>(first);
    // check every frame first: an exception must not leave half a batch sealed
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = Handle(env, sHandles_[i]);
      uint64_t off = offsets_[h], len = lengths_[h];
      if (off < static_cast<uint64_t>(SlotStart(h)) + kHeaderLen || off + len + kTagLen > SlotEnd(h) || len == 0)
        throw Napi::RangeError::New(env, "usernet_seal: frame " + std::to_string(h) + " has no room for header and tag");
    }
    EVP_CIPHER_CTX* ctx = key.enc;
    int outl = 0;
    uint32_t done = 0;
    for (uint32_t i = 0; i < n; i++, seq++) {
      uint32_t h = sHandles_[i];
      uint32_t off = offsets_[h];
      int len = static_cast<int>(lengths_[h]);
      uint8_t* p = base_ + off;
      uint8_t* hdr = p - kHeaderLen;
      hdr[0] = kFlagsEncrypted;
      hdr[1] = hdr[2] = hdr[3] = 0;
      hdr[4] = static_cast<uint8_t>(vni >> 16);
      hdr[5] = static_cast<uint8_t>(vni >> 8);
      hdr[6] = static_cast<uint8_t>(vni);
      hdr[7] = 0;
      PutBe32(hdr + 8, keyId);
      PutBe32(hdr + 12, sender);
      PutBe32(hdr + 16, static_cast<uint32_t>(seq >> 32));
      PutBe32(hdr + 20, static_cast<uint32_t>(seq));
      if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, hdr + 12) != 1 ||
          EVP_EncryptUpdate(ctx, nullptr, &outl, hdr, kHeaderLen) != 1 ||
          EVP_EncryptUpdate(ctx, p, &outl, p, len) != 1 || EVP_EncryptFinal_ex(ctx, p + len, &outl) != 1 ||
          EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagLen, p + len) != 1) {
        // OpenSSL failing on a set-up context is not expected; what was sealed stays sealed
        throw Napi::Error::New(env, "usernet_seal: EVP encrypt failed after " + std::to_string(done) + " frames");
      }
      offsets_[h] = off - kHeaderLen;
      lengths_[h] = static_cast<uint32_t>(len) + kHeaderLen + kTagLen;
      done++;
    }
    return Napi::Number::New(env, done);
  }

  // openBatch(count) -> opened. Frame sHandles_[i] (starting at its VXLAN
  // header) is opened with the key in slot sKeys_[i]; sResults_[i] = 1 when
  // the tag verified (the frame is now the inner frame), 0 when not (the
  // frame is unchanged: a failed frame is decrypted in place and encrypted
  // back, GCM's keystream being the same both ways).
  Napi::Value OpenBatch(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireBound(env);
    uint32_t n = Count(info);
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = Handle(env, sHandles_[i]);
      uint64_t off = offsets_[h], len = lengths_[h];
      if (off < SlotStart(h) || off + len > SlotEnd(h) || len < kHeaderLen + kTagLen)
        throw Napi::RangeError::New(env, "usernet_seal: frame " + std::to_string(h) + " is outside its slot or shorter than header and tag");
      KeyAt(env, sKeys_[i]);
    }
    int outl = 0;
    uint32_t opened = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint32_t h = sHandles_[i];
      Key& key = keys_[sKeys_[i]];
      uint32_t off = offsets_[h];
      int ctLen = static_cast<int>(lengths_[h] - kHeaderLen - kTagLen);
      uint8_t* hdr = base_ + off;
      uint8_t* p = hdr + kHeaderLen;
      EVP_CIPHER_CTX* ctx = key.dec;
      bool ok = EVP_DecryptInit_ex(ctx, nullptr, nullptr, nullptr, hdr + 12) == 1 &&
                EVP_DecryptUpdate(ctx, nullptr, &outl, hdr, kHeaderLen) == 1 &&
                EVP_DecryptUpdate(ctx, p, &outl, p, ctLen) == 1 &&
                EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagLen, p + ctLen) == 1 &&
                EVP_DecryptFinal_ex(ctx, p + ctLen, &outl) == 1;
      if (ok) {
        offsets_[h] = off + kHeaderLen;
        lengths_[h] = static_cast<uint32_t>(ctLen);
        sResults_[i] = 1;
        opened++;
      } else {
        Rewrap(env, key, hdr, ctLen);
        sResults_[i] = 0;
      }
    }
    return Napi::Number::New(env, opened);
  }

  // Encrypts the ctLen bytes after hdr back in place (restores the
  // ciphertext of a frame decrypted with the same key and nonce).
  void Rewrap(Napi::Env env, Key& key, uint8_t* hdr, int ctLen) {
    int outl = 0;
    uint8_t* p = hdr + kHeaderLen;
    if (EVP_EncryptInit_ex(key.enc, nullptr, nullptr, nullptr, hdr + 12) != 1 || EVP_EncryptUpdate(key.enc, p, &outl, p, ctLen) != 1)
      throw Napi::Error::New(env, "usernet_seal: EVP encrypt failed while restoring a frame");
  }

  // unopen(h, slot): frame h was opened by openBatch with the key in slot;
  // put it back as it was (ciphertext, offset at the header, full length).
  void Unopen(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    RequireBound(env);
    uint32_t h = Handle(env, info[0].As<Napi::Number>().Uint32Value());
    Key& key = KeyAt(env, info[1].As<Napi::Number>().Uint32Value());
    uint64_t off = offsets_[h], len = lengths_[h];
    if (off < static_cast<uint64_t>(SlotStart(h)) + kHeaderLen || off + len + kTagLen > SlotEnd(h))
      throw Napi::RangeError::New(env, "usernet_seal: frame " + std::to_string(h) + " was not opened in place");
    uint8_t* hdr = base_ + off - kHeaderLen;
    Rewrap(env, key, hdr, static_cast<int>(len));
    offsets_[h] = static_cast<uint32_t>(off) - kHeaderLen;
    lengths_[h] = static_cast<uint32_t>(len) + kHeaderLen + kTagLen;
  }
};

}  // namespace

NODE_API_ADDON(Seal)
