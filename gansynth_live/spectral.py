"""GANSynth's spectral representation: waveform <-> log-magnitude + instantaneous frequency.

A mono note of `audio_length` samples becomes an image of T time frames x F frequency
bins x 2 channels (Magenta's "IF-Mel, high frequency resolution", 128 x 1024 x 2 at 16 kHz):

* the STFT uses a periodic Hann window with n_fft = 2F and hop n_fft/4; all padding goes
  in front of the audio, the DC bin is dropped and the Nyquist bin kept;
* channel 0 is log(|X| + 1e-6); channel 1 is the instantaneous frequency (IF): the
  phase unwrapped along time and differenced, first frame keeping its raw phase, all
  divided by pi, so cumsum(IF * pi) gives back the unwrapped phase;
* the mel variant warps both to a square HTK mel axis: the magnitude as log power
  log(|X|^2 @ M + 1e-6), the phase as cumsum(IF * pi) @ M turned back into an IF;
* `normalize` maps the mel image into [-1, 1] with Magenta's fixed constants.

Every step reproduces Magenta GANSynth exactly (its quirks included) so its checkpoints
and training recipe carry over. Stereo images ([mag_L, IF_L, mag_R, IF_R], as in the
GANSynth-Stereo fork) transform each audio channel independently.

All per-batch methods are plain TensorFlow ops (usable inside tf.function, XLA and
tf.data); the mel matrices are computed once, in float64 numpy.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gansynth_live.quiet_tensorflow import import_tensorflow

tf = import_tensorflow()

# Magenta's prespecified normaliser for the mel_prog_hires config: (a, b) in clip(a*x+b, -1, 1).
MAG_NORMALIZER = (0.0661371661726, 0.113718730221)
IF_NORMALIZER = (0.8, 0.0)

_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0
_LOG_EPS = 1.0e-6


# --------------------------------------------------------------------------------------
# Mel scale (numpy, float64)
# --------------------------------------------------------------------------------------

def hertz_to_mel(f) -> np.ndarray:
    """HTK mel scale: 1127 * ln(1 + f / 700)."""
    return _MEL_HIGH_FREQUENCY_Q * np.log(1.0 + np.asarray(f, np.float64) / _MEL_BREAK_FREQUENCY_HERTZ)


def mel_to_hertz(m) -> np.ndarray:
    """Inverse of `hertz_to_mel`: 700 * (exp(m / 1127) - 1)."""
    return _MEL_BREAK_FREQUENCY_HERTZ * (np.exp(np.asarray(m, np.float64) / _MEL_HIGH_FREQUENCY_Q) - 1.0)


def linear_to_mel_matrix(num_mel_bins: int, num_spectrogram_bins: int, sample_rate: float,
                         lower_edge_hertz: float, upper_edge_hertz: float) -> np.ndarray:
    """Triangular mel weights, float64 of shape [num_spectrogram_bins, num_mel_bins].

    Magenta's variant of the HTK matrix: spectrogram bins are placed at
    linspace(0, sr/2, num_spectrogram_bins) (although the converter's kept bins are
    k*sr/n_fft, k = 1..F), row 0 is zeroed, and bands narrower than 1.5 bin widths,
    with a bin width of (sr/2)/num_spectrogram_bins, are widened in mel, one after the
    other on a shared edge array (see the comment in the body).
    """
    if int(num_mel_bins) != num_mel_bins or num_mel_bins <= 0:
        raise ValueError(f"num_mel_bins must be a positive integer, got {num_mel_bins!r}")
    if int(num_spectrogram_bins) != num_spectrogram_bins or num_spectrogram_bins <= 0:
        raise ValueError(f"num_spectrogram_bins must be a positive integer, got {num_spectrogram_bins!r}")
    if not sample_rate > 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate!r}")
    nyquist = sample_rate / 2.0
    if not 0.0 <= lower_edge_hertz < upper_edge_hertz <= nyquist:
        raise ValueError(f"need 0 <= lower_edge_hertz < upper_edge_hertz <= sample_rate/2 = {nyquist}, "
                         f"got lower_edge_hertz={lower_edge_hertz!r}, upper_edge_hertz={upper_edge_hertz!r}")
    num_mel_bins = int(num_mel_bins)
    num_spectrogram_bins = int(num_spectrogram_bins)

    # Row 0 (the DC position of this grid) gets no weight, as in HTK.
    freqs = np.linspace(0.0, nyquist, num_spectrogram_bins)[1:, np.newaxis]
    # Band i spans edges[i] .. edges[i+2] with its centre at edges[i+1].
    edges = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz),
                        num_mel_bins + 2)

    # Low mel bands are narrower than a frequency bin and would get no weight at all;
    # widen each such band to 1.5 bins in Hz, symmetrically in mel around its centre
    # (700*(e^(c+d) - e^(c-d)) = th, i.e. sinh(d) = th / (2 (f_c + 700)), d in mel/1127).
    # Magenta's lower/centre/upper arrays are numpy views of ONE edge array, so widening
    # band i (rewriting edges[i] and edges[i+2]) also moves the centres of bands i-1 and
    # i+1, and later bands are tested and widened from edges moved by earlier ones. Checkpoints were trained with that
    # matrix, so the same sequential in-place update is done here on the shared array.
    freq_th = 1.5 * nyquist / num_spectrogram_bins
    for i in range(num_mel_bins):
        lower_hz_i, center_hz_i, upper_hz_i = mel_to_hertz(edges[i:i + 3])
        if upper_hz_i - lower_hz_i < freq_th:
            rhs = 0.5 * freq_th / (center_hz_i + _MEL_BREAK_FREQUENCY_HERTZ)
            # asinh written out as Magenta does, so the float64 result matches bit for bit.
            dm = _MEL_HIGH_FREQUENCY_Q * np.log(rhs + np.sqrt(1.0 + rhs ** 2))
            center_mel_i = edges[i + 1]
            edges[i] = center_mel_i - dm
            edges[i + 2] = center_mel_i + dm
    lower_mel, center_mel, upper_mel = edges[:-2], edges[1:-1], edges[2:]

    lower_hz = mel_to_hertz(lower_mel)[np.newaxis, :]
    center_hz = mel_to_hertz(center_mel)[np.newaxis, :]
    upper_hz = mel_to_hertz(upper_mel)[np.newaxis, :]
    # Triangles: rising from the lower edge to the centre, falling to the upper edge.
    rising = (freqs - lower_hz) / (center_hz - lower_hz)
    falling = (upper_hz - freqs) / (upper_hz - center_hz)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return np.pad(weights, [[1, 0], [0, 0]])


def mel_to_linear_matrix(l2mel: np.ndarray) -> np.ndarray:
    """Magenta's approximate inverse of `linear_to_mel_matrix`, float64 [mel, freq].

    M^T @ diag(d) with d = 1 / colsum(M @ M^T); an entry of colsum with
    |x| <= 1e-8 is kept as it is (in practice the zeros of M's all-zero first and
    last rows, so those linear bins get nothing back from the mel image).
    """
    m = np.asarray(l2mel, np.float64)
    if m.ndim != 2:
        raise ValueError(f"l2mel must be a 2-D [freq, mel] matrix, got shape {m.shape}")
    colsum = np.sum(m @ m.T, axis=0)
    big = np.abs(colsum) > 1.0e-8
    d = np.where(big, 1.0 / np.where(big, colsum, 1.0), colsum)
    return m.T * d[np.newaxis, :]  # == m.T @ diag(d)


# --------------------------------------------------------------------------------------
# Phase helpers (TensorFlow)
# --------------------------------------------------------------------------------------

def _positive_axis(x: tf.Tensor, axis: int) -> int:
    rank = x.shape.rank
    if rank is None:
        raise ValueError("the tensor's rank must be known statically")
    if not -rank <= axis < rank:
        raise ValueError(f"axis must be in [{-rank}, {rank - 1}] for a rank-{rank} tensor, got {axis}")
    return axis % rank


def _slice_axis(x: tf.Tensor, axis: int, start, stop) -> tf.Tensor:
    index = [slice(None)] * x.shape.rank
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _diff(x: tf.Tensor, axis: int) -> tf.Tensor:
    return _slice_axis(x, axis, 1, None) - _slice_axis(x, axis, None, -1)


def unwrap(phase: tf.Tensor, axis: int) -> tf.Tensor:
    """Unwrap a phase tensor along `axis` (Magenta's float32 arithmetic, not np.unwrap's).

    Each step dd is mapped into [-pi, pi) with floormod (pi kept for positive dd
    landing on -pi) and the correction ddmod - dd accumulated. Unlike np.unwrap, steps
    with |dd| < pi are not exempted: Magenta's exemption assigns to the wrong variable,
    so its correction is always applied (it is ~0 there anyway, up to float32 rounding).
    """
    phase = tf.convert_to_tensor(phase)
    axis = _positive_axis(phase, axis)
    pi = tf.constant(np.pi, phase.dtype)
    dd = _diff(phase, axis)
    ddmod = tf.math.floormod(dd + pi, 2.0 * pi) - pi
    ddmod = tf.where(tf.logical_and(tf.equal(ddmod, -pi), dd > 0), pi, ddmod)
    correction = tf.cumsum(ddmod - dd, axis=axis)
    # The first element is never corrected.
    correction = tf.concat([tf.zeros_like(_slice_axis(phase, axis, None, 1)), correction], axis=axis)
    return phase + correction


def instantaneous_frequency(phase: tf.Tensor, time_axis: int = -2) -> tf.Tensor:
    """Unwrapped phase differenced along `time_axis`, first frame raw, all divided by pi."""
    phase = tf.convert_to_tensor(phase)
    time_axis = _positive_axis(phase, time_axis)
    unwrapped = unwrap(phase, axis=time_axis)
    dphase = tf.concat([_slice_axis(unwrapped, time_axis, None, 1), _diff(unwrapped, time_axis)],
                       axis=time_axis)
    return dphase / tf.constant(np.pi, phase.dtype)


# --------------------------------------------------------------------------------------
# The converter
# --------------------------------------------------------------------------------------

class SpecgramConverter:
    """Waveform <-> (log-magnitude, instantaneous frequency) <-> mel-IF, Magenta-exact.

    Shapes: waves (B, audio_length, channels) float32; stfts (B, T, F, channels)
    complex64; (mel-)specgrams (B, T, F, 2*channels) float32 with audio channel c in
    image channels 2c (log-magnitude) and 2c+1 (IF).

    Edges (Magenta's framing, kept): the last n_fft - hop samples are covered by fewer
    frames than the inverse window assumes and come back attenuated, and so do the
    first ones when pad_left < n_fft - hop (e.g. audio_length equal to the full
    coverage). The default 64000-sample config has pad_left 3072 >= 1536.
    """

    def __init__(self, sample_rate: int = 16000, audio_length: int = 64000,
                 spec_shape: tuple[int, int] = (128, 1024), channels: int = 1,
                 overlap: float = 0.75):
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) \
                or sample_rate <= 0:
            raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
        if isinstance(audio_length, bool) or not isinstance(audio_length, (int, np.integer)) \
                or audio_length <= 0:
            raise ValueError(f"audio_length must be a positive integer (samples), got {audio_length!r}")
        if (not isinstance(spec_shape, Sequence) or len(spec_shape) != 2
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                           for s in spec_shape)):
            raise ValueError(f"spec_shape must be (time_frames, freq_bins), two positive integers, "
                             f"got {spec_shape!r}")
        frames, bins = int(spec_shape[0]), int(spec_shape[1])
        if bins & (bins - 1):
            raise ValueError(f"spec_shape[1] (frequency bins) must be a power of 2, got {bins}")
        if isinstance(channels, bool) or not isinstance(channels, (int, np.integer)) or channels < 1:
            raise ValueError(f"channels must be a positive integer (1 mono, 2 stereo), got {channels!r}")
        if not 0.0 < overlap < 1.0:
            raise ValueError(f"overlap must be in the open interval (0, 1), got {overlap!r}")
        n_fft = 2 * bins
        hop = int((1.0 - overlap) * n_fft)
        if hop < 1:
            raise ValueError(f"overlap {overlap!r} leaves a hop of 0 samples at n_fft {n_fft}; "
                             f"overlap must be at most {1.0 - 1.0 / n_fft}")
        covered = hop * (frames - 1) + n_fft
        if covered < audio_length:
            raise ValueError(f"audio_length {audio_length} is longer than the {frames} frames "
                             f"(n_fft {n_fft}, hop {hop}) cover: at most {covered} samples")

        self.sample_rate = int(sample_rate)
        self.audio_length = int(audio_length)
        self.spec_shape = (frames, bins)
        self.channels = int(channels)
        self.overlap = float(overlap)
        self.n_fft = n_fft
        self.hop = hop
        # All STFT padding in front (Magenta/NSynth); nothing at the end.
        self.pad_left = covered - self.audio_length
        self.pad_right = 0

        l2mel = linear_to_mel_matrix(bins, bins, self.sample_rate, 0.0, self.sample_rate / 2.0)
        self._l2mel = tf.constant(l2mel, tf.float32)
        self._mel2l = tf.constant(mel_to_linear_matrix(l2mel), tf.float32)
        # Per image channel: even = magnitude, odd = IF.
        self._norm_a = tf.constant([MAG_NORMALIZER[0], IF_NORMALIZER[0]] * self.channels, tf.float32)
        self._norm_b = tf.constant([MAG_NORMALIZER[1], IF_NORMALIZER[1]] * self.channels, tf.float32)

    def __repr__(self) -> str:
        return (f"SpecgramConverter(sample_rate={self.sample_rate}, audio_length={self.audio_length}, "
                f"spec_shape={self.spec_shape}, channels={self.channels}, overlap={self.overlap})")

    @property
    def l2mel(self) -> tf.Tensor:
        """The float32 [freq, mel] warping matrix."""
        return self._l2mel

    @property
    def mel2l(self) -> tf.Tensor:
        """The float32 [mel, freq] approximate inverse."""
        return self._mel2l

    # -- layout helpers: audio channels travel in the batch axis -------------------------

    def _check_shape(self, x: tf.Tensor, expected: tuple, what: str) -> None:
        """Static shape check (B and unknown dims pass) with a readable message."""
        shape = x.shape
        ok = shape.rank == len(expected) and all(
            e is None or s is None or s == e for s, e in zip(shape.as_list(), expected))
        if not ok:
            want = ", ".join("B" if e is None else str(e) for e in expected)
            raise ValueError(f"{what} must have shape ({want}) for {self!r}, got {shape}")

    def _split_image(self, images: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(B, T, F, 2C) -> magnitude and IF parts, each (B, C, T, F)."""
        t, f = self.spec_shape
        x = tf.reshape(images, [-1, t, f, self.channels, 2])
        x = tf.transpose(x, [0, 3, 1, 2, 4])
        return x[..., 0], x[..., 1]

    def _join_image(self, mag: tf.Tensor, phase: tf.Tensor) -> tf.Tensor:
        """Two (B, C, T, F) parts -> (B, T, F, 2C) interleaved per audio channel."""
        t, f = self.spec_shape
        x = tf.stack([mag, phase], axis=-1)            # B, C, T, F, 2
        x = tf.transpose(x, [0, 2, 3, 1, 4])           # B, T, F, C, 2
        return tf.reshape(x, [-1, t, f, 2 * self.channels])

    # -- waveform <-> STFT -----------------------------------------------------------------

    def waves_to_stfts(self, waves) -> tf.Tensor:
        """(B, audio_length, channels) float32 -> (B, T, F, channels) complex64."""
        waves = tf.convert_to_tensor(waves)
        if waves.dtype != tf.float32:
            waves = tf.cast(waves, tf.float32)
        self._check_shape(waves, (None, self.audio_length, self.channels), "waves")
        x = tf.transpose(waves, [0, 2, 1])              # B, C, L
        x = tf.pad(x, [[0, 0], [0, 0], [self.pad_left, self.pad_right]])
        stfts = tf.signal.stft(x, frame_length=self.n_fft, frame_step=self.hop,
                               fft_length=self.n_fft, pad_end=False)  # B, C, T, F+1
        stfts = stfts[..., 1:]                          # drop DC, keep Nyquist
        return tf.transpose(stfts, [0, 2, 3, 1])

    def stfts_to_waves(self, stfts) -> tf.Tensor:
        """(B, T, F, channels) complex64 -> (B, audio_length, channels) float32."""
        stfts = tf.convert_to_tensor(stfts)
        if stfts.dtype != tf.complex64:
            stfts = tf.cast(stfts, tf.complex64)
        self._check_shape(stfts, (None, *self.spec_shape, self.channels), "stfts")
        x = tf.transpose(stfts, [0, 3, 1, 2])           # B, C, T, F
        x = tf.pad(x, [[0, 0], [0, 0], [0, 0], [1, 0]])  # zero DC bin back in front
        waves = tf.signal.inverse_stft(
            x, frame_length=self.n_fft, frame_step=self.hop, fft_length=self.n_fft,
            window_fn=tf.signal.inverse_stft_window_fn(self.hop))
        waves = waves[:, :, self.pad_left:self.pad_left + self.audio_length]
        return tf.transpose(waves, [0, 2, 1])

    # -- STFT <-> linear specgrams ---------------------------------------------------------

    def stfts_to_specgrams(self, stfts) -> tf.Tensor:
        """Complex STFT -> (B, T, F, 2C) [log(|X| + 1e-6), IF] per audio channel."""
        stfts = tf.convert_to_tensor(stfts)
        if stfts.dtype != tf.complex64:
            stfts = tf.cast(stfts, tf.complex64)
        self._check_shape(stfts, (None, *self.spec_shape, self.channels), "stfts")
        x = tf.transpose(stfts, [0, 3, 1, 2])           # B, C, T, F: time axis is -2
        logmag = tf.math.log(tf.abs(x) + _LOG_EPS)
        ifreq = instantaneous_frequency(tf.math.angle(x), time_axis=-2)
        return self._join_image(logmag, ifreq)

    def specgrams_to_stfts(self, specgrams) -> tf.Tensor:
        """(B, T, F, 2C) [log-magnitude, IF] -> complex64 (B, T, F, C)."""
        specgrams = self._as_image(specgrams, "specgrams")
        logmag, ifreq = self._split_image(specgrams)
        mag = tf.exp(logmag)
        phase = tf.cumsum(ifreq * np.pi, axis=-2)
        stfts = tf.complex(mag, 0.0) * tf.complex(tf.cos(phase), tf.sin(phase))
        return tf.transpose(stfts, [0, 2, 3, 1])

    # -- linear <-> mel ----------------------------------------------------------------------

    def specgrams_to_melspecgrams(self, specgrams) -> tf.Tensor:
        """Linear [log-magnitude, IF] -> mel [log power, mel IF], per audio channel."""
        specgrams = self._as_image(specgrams, "specgrams")
        logmag, ifreq = self._split_image(specgrams)
        mag2 = tf.exp(2.0 * logmag)
        phase = tf.cumsum(ifreq * np.pi, axis=-2)
        logmelmag2 = tf.math.log(tf.tensordot(mag2, self._l2mel, 1) + _LOG_EPS)
        mel_phase = tf.tensordot(phase, self._l2mel, 1)
        mel_if = instantaneous_frequency(mel_phase, time_axis=-2)
        return self._join_image(logmelmag2, mel_if)

    def melspecgrams_to_specgrams(self, melspecgrams) -> tf.Tensor:
        """Mel [log power, mel IF] -> linear [log-magnitude, IF] (approximate, Magenta's)."""
        melspecgrams = self._as_image(melspecgrams, "melspecgrams")
        logmelmag2, mel_if = self._split_image(melspecgrams)
        mag2 = tf.tensordot(tf.exp(logmelmag2), self._mel2l, 1)
        logmag = 0.5 * tf.math.log(mag2 + _LOG_EPS)
        mel_phase = tf.cumsum(mel_if * np.pi, axis=-2)
        phase = tf.tensordot(mel_phase, self._mel2l, 1)
        ifreq = instantaneous_frequency(phase, time_axis=-2)
        return self._join_image(logmag, ifreq)

    # -- compositions ------------------------------------------------------------------------

    def waves_to_specgrams(self, waves) -> tf.Tensor:
        return self.stfts_to_specgrams(self.waves_to_stfts(waves))

    def specgrams_to_waves(self, specgrams) -> tf.Tensor:
        return self.stfts_to_waves(self.specgrams_to_stfts(specgrams))

    def waves_to_melspecgrams(self, waves) -> tf.Tensor:
        return self.specgrams_to_melspecgrams(self.waves_to_specgrams(waves))

    def melspecgrams_to_waves(self, melspecgrams) -> tf.Tensor:
        return self.specgrams_to_waves(self.melspecgrams_to_specgrams(melspecgrams))

    # -- normalisation -----------------------------------------------------------------------

    def normalize(self, melspecgrams) -> tf.Tensor:
        """clip(a*x + b, -1, 1) per channel (magnitude: MAG_NORMALIZER, IF: IF_NORMALIZER)."""
        x = self._as_image(melspecgrams, "melspecgrams")
        return tf.clip_by_value(self._norm_a * x + self._norm_b, -1.0, 1.0)

    def denormalize(self, images) -> tf.Tensor:
        """(x - b) / a per channel: the inverse of `normalize` inside [-1, 1]."""
        x = self._as_image(images, "images")
        return (x - self._norm_b) / self._norm_a

    def _as_image(self, x, what: str) -> tf.Tensor:
        x = tf.convert_to_tensor(x)
        if x.dtype != tf.float32:
            x = tf.cast(x, tf.float32)
        self._check_shape(x, (None, *self.spec_shape, 2 * self.channels), what)
        return x
