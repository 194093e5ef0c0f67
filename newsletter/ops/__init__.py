"""Operations: health, metrics, logs and the doctor."""
