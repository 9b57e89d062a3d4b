"""The stages a session runs, in the order of Eq. 1: P_img on the (painted) image, the trajectories on
the intermediate image, the video denoising loop with the Eq. 4 blend, decoding, previews.

`pipeline.Pipeline` (the Session's base class) chains them, each behind the content-addressed
`cache.StageCache`, so changing lambda reruns only the denoising and decoding. These modules know
no widget and no particular model: backends come in through the session.
"""
